"""Notifications recorded, their sending started on commit and re-driven; the attempts are ``alerts.services.sending``.

``alerts_notify`` is the entry point the evaluator calls for incidents; ``notifications_enqueue`` is shared
with ``alerts.notices``; ``notification_attempt_record`` stores a channel test's single attempt.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from alerts import delivery
from alerts.models import Alert, Notification, NotificationKind, NotificationStatus
from alerts.services.sending import attempt_outcome, gone_webhooks_disable
from controlplane.queue import enqueue_on_commit


# --- notifications -----------------------------------------------------------------------------------------
def notification_attempt_record(notification: Notification, result: delivery.DeliveryResult, *, final: bool
                                ) -> float | None:
    """Stores the outcome of an attempt on an unclaimed notification (a channel test); returns the delay before
    the next attempt, or None when done."""
    now = timezone.now()
    fields, delay = attempt_outcome(notification, result, final=final, now=now)
    for name, value in fields.items():
        setattr(notification, name, value)
    with transaction.atomic():
        notification.save(update_fields=list(fields))
        if result.gone:
            gone_webhooks_disable({notification.channel_id}, now)
    return delay


def notifications_enqueue(notification_ids: list[str]) -> None:
    """Starts a sender run for these notifications once the current transaction commits (one task however many),
    so they need not wait for the beat's."""
    if notification_ids:
        enqueue_on_commit("alerts.tasks.notifications_send", notification_ids)


def notifications_redrive(*, now: datetime | None = None) -> int:
    """Re-enqueues pending deliveries whose next attempt is overdue (a lost task, a worker crash)."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.NOTIFICATION_REDRIVE_AFTER_S)
    # A live claim is an attempt in progress; one left by a worker that died mid-send is taken once it expires.
    ids = list(Notification.objects.filter(status=NotificationStatus.PENDING, next_attempt_at__lt=stale)
               .exclude(claimed_until__gt=now).values_list("id", flat=True)[:1000])
    if ids:
        Notification.objects.filter(id__in=ids).update(next_attempt_at=now)
        notifications_enqueue(ids)
    return len(ids)


def _alert_payload(alert: Alert, kind: str, now: datetime) -> dict[str, Any]:
    """The body every channel renders. An organization-level incident (``payment_failed``) has
    ``"deployment": null`` and names the organization instead."""
    rule, deployment = alert.rule, alert.deployment
    verb = "resolved" if kind == NotificationKind.RESOLVE else "firing"
    base = settings.PUBLIC_BASE_URL.rstrip("/")
    subject = deployment.name if deployment is not None else f"organization {alert.organization_id}"
    links = {"alert": f"{base}/api/v1/alerts/{alert.id}"}
    if deployment is not None:
        links["deployment"] = f"{base}/api/v1/deployments/{deployment.id}"
    return {
        "type": f"alert.{verb}",
        "event": verb,
        "test": False,
        "summary": f"[{rule.severity.upper()}] {rule.name}: {rule.metric} {rule.operator} {rule.threshold} on "
                   f"{subject} ({verb}, value {alert.value:g})",
        "severity": rule.severity,
        "value": alert.value,
        "organization": {"id": alert.organization_id},
        "alert": {"id": alert.id, "state": alert.state, "started_at": alert.started_at.isoformat(),
                  "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None},
        "rule": {"id": rule.id, "name": rule.name, "metric": rule.metric, "operator": rule.operator,
                 "threshold": str(rule.threshold), "duration_s": rule.duration_s},
        "deployment": {"id": deployment.id, "name": deployment.name, "project": deployment.project_id,
                       "status": deployment.status, "status_reason": deployment.status_reason}
        if deployment is not None else None,
        "sent_at": now.isoformat(),
        "links": links,
    }


def alerts_notify(*, alerts: list[Alert], kind: str, now: datetime) -> list[str]:
    """Records one notification per enabled channel of each alert's rule (one insert) and enqueues their
    delivery on commit."""
    notifications = []
    for alert in alerts:
        payload = _alert_payload(alert, kind, now)
        notifications += [Notification(organization_id=alert.organization_id, channel=channel, alert=alert,
                                       kind=kind, payload=payload, next_attempt_at=now)
                          for channel in alert.rule.channels.all() if channel.enabled]
    Notification.objects.bulk_create(notifications, batch_size=1000)
    ids = [n.id for n in notifications]
    notifications_enqueue(ids)
    return ids
