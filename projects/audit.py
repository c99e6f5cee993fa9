"""The audit log writer: one ``AuditEvent`` per audited write, in the caller's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import models

from projects.models import AuditEvent, Organization
from projects.tenancy import Principal


def audit_record(
    *,
    principal: Principal,
    action: str,
    target: models.Model | None = None,
    changes: dict[str, Any] | None = None,
    organization: Organization | None = None,
) -> AuditEvent:
    event = audit_event(principal=principal, action=action, target=target, changes=changes,
                        organization=organization)
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
) -> AuditEvent:
    """The event :func:`audit_record` writes, not saved yet."""
    return AuditEvent(
        organization=organization if organization is not None else principal.organization,
        actor_type=principal.actor_type,
        actor_id=principal.actor_id,
        actor_label=principal.actor_label,
        action=action,
        target_type=target._meta.model_name if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=str(target)[:254] if target is not None else "",
        changes=_jsonable(changes or {}),
        ip=principal.ip,
        # The header is the client's to fill: drop control characters (PostgreSQL refuses NUL outright).
        user_agent="".join(ch for ch in (principal.user_agent or "") if ch.isprintable())[:256],
    )


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
