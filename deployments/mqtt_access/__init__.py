"""A deployment's MQTT access: the built-in authentication database (device usernames with salted hashes),
the ACL, and (next) their delivery to the running broker.

- ``validation``: pure rules for usernames, passwords, topic filters and ACL rules, and the matching the
  broker applies (``acl_decide``; ``acl_first_match`` names the deciding rule for the console's "would this
  be allowed" check).
- ``hashing``: the password hash scheme EMQX 5 verifies (PBKDF2-HMAC-SHA256).
- ``services``: audited writes; ``selectors``: reads.
"""
