"""The door other apps use into projects' services and selectors (inside ``projects``, import the modules).

The platform modules stay importable directly: ``projects.models`` (foreign keys), ``projects.tenancy``
(``Principal``), ``projects.roles``, ``projects.audit``, ``projects.api.base``, ``projects.console.base``,
``projects.ops_admin``, and ``projects.hooks`` to react to a project's life. What another app reads or writes
of tenancy data goes through the names below.

Projects the principal may see (all of them; a sub-account's only):
    ``project_list``, ``project_get`` (NotFound for one it may not see), ``projects_by_ids`` (the ids a request
    names, an unknown or hidden one reported as a field error).

An organization's people, read by the platform itself (no principal: it mails owners and admins):
    ``member_emails``.
"""

from __future__ import annotations

from projects.selectors import member_emails, project_get, project_list, projects_by_ids

__all__ = [
    "member_emails",
    "project_get",
    "project_list",
    "projects_by_ids",
]
