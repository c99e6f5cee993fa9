"""SCIM 2.0 (RFC 7643/7644) provisioning of an organization's members and groups, under ``/scim/v2/``.

Its own surface with its own credential (the organization's SCIM token) and its own error format
(``urn:ietf:params:scim:api:messages:2.0:Error`` as ``application/scim+json``), so it lives beside
``projects.api``, not under ``/api/v1``. Writes go through ``projects.services.scim``.
"""
