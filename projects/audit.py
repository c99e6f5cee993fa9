"""The audit log writer: one ``AuditEvent`` per audited write, in the caller's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import models

from projects.models import AuditEvent, Membership, Organization, User
from projects.roles import Role
from projects.tenancy import Principal


def audit_record(
    *,
    principal: Principal,
    action: str,
    target: models.Model | None = None,
    changes: dict[str, Any] | None = None,
    organization: Organization | None = None,
    actor_label: str | None = None,
) -> AuditEvent:
    event = audit_event(principal=principal, action=action, target=target, changes=changes,
                        organization=organization, actor_label=actor_label)
    event.save()
    return event


def audit_record_many(events: list[AuditEvent]) -> None:
    """Writes the events of a batch (built with :func:`audit_event`) in one statement, in the caller's
    transaction: a job that writes thousands of rows at once audits them without a round trip each."""
    AuditEvent.objects.bulk_create(events)


def audit_event(
    *,
    principal: Principal,
    action: str,
    target: models.Model | None = None,
    changes: dict[str, Any] | None = None,
    organization: Organization | None = None,
    actor_label: str | None = None,
) -> AuditEvent:
    """The event :func:`audit_record` writes, not saved yet; ``actor_label`` stands in for the principal's (a
    login attempt naming an address nobody has)."""
    return AuditEvent(
        organization=organization if organization is not None else principal.organization,
        actor_type=principal.actor_type,
        actor_id=principal.actor_id,
        actor_label=(actor_label if actor_label is not None else principal.actor_label)[:254],
        action=action,
        target_type=target._meta.model_name if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=str(target)[:254] if target is not None else "",
        changes=_jsonable(changes or {}),
        ip=principal.ip,
        # The header is the client's to fill: drop control characters (PostgreSQL refuses NUL outright).
        user_agent="".join(ch for ch in (principal.user_agent or "") if ch.isprintable())[:256],
    )


def audit_record_for_person(
    *,
    user: User | None,
    action: str,
    changes: dict[str, Any],
    ip: str | None,
    user_agent: str = "",
    actor_label: str | None = None,
) -> None:
    """An event of a person's own account (password, login, session) rather than of an organization's data.
    The log is kept per organization and a person may belong to several, so it is recorded in each of them;
    once without an organization (the ops site sees it) for a person in none, or for a login attempt naming
    an address nobody has (``user`` None, ``actor_label`` the address tried)."""
    memberships = list(Membership.objects.filter(user=user).select_related("organization", "user")) if user else []
    principals = [Principal.for_membership(membership, ip=ip, user_agent=user_agent) for membership in memberships]
    if not principals:
        principals = [Principal(organization=None, role=Role.VIEWER, project_ids=None, user=user,  # type: ignore[arg-type]
                                ip=ip, user_agent=user_agent)]
    for principal in principals:
        audit_record(principal=principal, action=action, target=user, changes=changes, actor_label=actor_label)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, models.Model):
        return str(value.pk)
    return value
