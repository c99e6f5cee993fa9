"""Every write to tenancy data: keyword-only, atomic, audited; outside work is enqueued on commit.

One module per concern; import the one you need (other apps: ``projects.facade``):
``organizations`` (signup, organization settings, the operators' flagship switch), ``projects`` (create,
rename, delete, announced to other apps through ``projects.hooks``), ``members``, ``invitations``,
``api_keys``, ``logins`` (the one counted password check and its lockout), ``grants`` (who may hand out which
role and projects) and ``validation`` (model cleaning and password rules they share). The audit log writer is
``projects.audit``; password change and reset are ``projects.accounts``.
"""
