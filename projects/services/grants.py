"""Who may hand out what: nobody grants (or touches) more than they hold, in role and in projects. The
member, invitation and API key services check every grant here; ``may_grant`` lets pages hide what would be
refused."""

from __future__ import annotations

from controlplane import errors
from projects.models import Project
from projects.roles import role_can_grant
from projects.tenancy import Principal


def grant_check(principal: Principal, role: str, limit: frozenset[str] | None) -> None:
    """Nobody hands out (or touches) more than they hold: the role, and the project limit (None: all)."""
    if not role_can_grant(principal.role, role):
        raise errors.PermissionDenied(f"Your role ({principal.role}) cannot grant the role {role}.")
    if principal.is_project_limited and (limit is None or not limit <= principal.project_ids):
        raise errors.PermissionDenied("You can only grant access to projects you are limited to.")


def grant_limit_of(projects: list[Project]) -> frozenset[str] | None:
    """The limit a grant's ``projects`` list means: empty is every project (see ProjectLimited)."""
    return frozenset(p.id for p in projects) or None


def may_grant(*, principal: Principal, role: str, limit: frozenset[str] | None) -> bool:
    """Whether ``principal`` may hand out ``role`` with the project ``limit`` (None: every project), or touch a
    member or key that holds them: the check the member, invitation and key services make, for pages that
    hide what would be refused."""
    try:
        grant_check(principal, role, limit)
    except errors.PermissionDenied:
        return False
    return True
