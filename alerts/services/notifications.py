"""The delivery engine: notifications recorded on commit, claimed per attempt, retried on a schedule.

``alerts_notify`` is the entry point the evaluator calls for incidents; ``notifications_enqueue`` is shared
with ``alerts.notices``; ``notification_attempt_record`` stores a channel test's single attempt.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from alerts import delivery
from alerts.models import Alert, AlertChannel, ChannelType, Notification, NotificationKind, NotificationStatus
from controlplane import telemetry
from controlplane.queue import enqueue


# --- notifications -----------------------------------------------------------------------------------------
def _attempt_outcome(notification: Notification, result: delivery.DeliveryResult, *, final: bool, now: datetime
                     ) -> tuple[dict[str, Any], float | None]:
    """The fields an attempt's outcome changes, and the delay before the next attempt (None when done)."""
    attempts = notification.attempts + 1
    fields: dict[str, Any] = {"attempts": attempts, "status_code": result.status_code,
                              "last_error": result.error[:500]}
    delay: float | None = None
    if result.delivered:
        fields.update(status=NotificationStatus.DELIVERED, delivered_at=now, next_attempt_at=None)
    else:
        schedule = settings.NOTIFICATION_RETRY_SCHEDULE_S
        if result.transient and not final and attempts <= len(schedule):
            delay = float(schedule[attempts - 1])
            if result.retry_after_s is not None:
                delay = max(delay, min(result.retry_after_s, 24 * 3600.0))
            fields.update(status=NotificationStatus.PENDING, next_attempt_at=now + timedelta(seconds=delay))
        else:
            fields.update(status=NotificationStatus.FAILED, next_attempt_at=None)
    telemetry.delivery_outcome_recorded(channel_type=notification.channel.type, outcome=fields["status"])
    return fields, delay


def _disable_gone_webhook(notification: Notification, result: delivery.DeliveryResult, now: datetime) -> None:
    if result.gone and notification.channel.type == ChannelType.WEBHOOK:
        AlertChannel.objects.filter(pk=notification.channel_id).update(
            enabled=False, disabled_reason="The endpoint answered 410 Gone.", updated_at=now)


def notification_attempt_record(notification: Notification, result: delivery.DeliveryResult, *, final: bool
                                ) -> float | None:
    """Stores the outcome of an attempt on an unclaimed notification (a channel test); returns the delay before
    the next attempt, or None when done."""
    now = timezone.now()
    fields, delay = _attempt_outcome(notification, result, final=final, now=now)
    for name, value in fields.items():
        setattr(notification, name, value)
    with transaction.atomic():
        notification.save(update_fields=list(fields))
        _disable_gone_webhook(notification, result, now)
    return delay


def _claim(notification_id: str, now: datetime) -> datetime | None:
    """Claims a pending notification for one attempt; returns the claim's expiry (the token that proves it is ours
    when the outcome is stored), or None when it is not pending or another worker holds a live claim."""
    until = now + timedelta(seconds=settings.NOTIFICATION_CLAIM_S)
    unclaimed = Q(claimed_until__isnull=True) | Q(claimed_until__lte=now)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # The claim stands in for the row lock this used to hold across the send, and a row lock never
            # survives a database crash either: a claim lost with the last few commits before one leaves the
            # notification pending, to be re-driven, as a lost lock did. So it skips the WAL flush (about a
            # disk sync per delivery); the attempt's outcome below is stored durably as before.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        # One conditional UPDATE: of two workers racing for the row, the second re-checks the condition after
        # the first commits (READ COMMITTED) and claims nothing.
        claimed = (Notification.objects.filter(unclaimed, pk=notification_id, status=NotificationStatus.PENDING)
                   .update(claimed_until=until))
    return until if claimed else None


def _store_claimed(notification_id: str, claim: datetime, fields: dict[str, Any]) -> bool:
    """Stores ``fields`` and releases the claim, only if the claim is still ours (it expired and another worker
    took over: theirs is the attempt of record)."""
    return bool(Notification.objects.filter(pk=notification_id, claimed_until=claim)
                .update(**fields, claimed_until=None))


def _pagerduty_throttled(notification: Notification, now: datetime) -> bool:
    """PagerDuty accepts about 120 events a minute per routing key: beyond that, wait instead of being refused."""
    recent = Notification.objects.filter(channel_id=notification.channel_id, delivered_at__gte=now - timedelta(
        seconds=60)).count()
    return recent >= settings.PAGERDUTY_EVENTS_PER_MINUTE


def notification_attempt(*, notification_id: str) -> float | None:
    """One delivery attempt of a pending notification. Returns the delay before a retry, or None when done
    (delivered, failed, gone, or not pending: a duplicated task is a no-op).

    No transaction or row lock is held across the send (up to ``NOTIFICATION_TIMEOUT_S`` against a customer's
    server: an idle-in-transaction connection per delivery in flight, and a channel's deletion blocked behind
    it). Instead the attempt claims the row first (``claimed_until``), and a concurrent duplicate task finds it
    claimed and does nothing. The trade-off against the lock: a worker that dies mid-send leaves its claim until
    it expires (``NOTIFICATION_CLAIM_S``; the redrive picks the notification up afterwards) where a lock went with
    its connection at once; and a worker stalled past the claim's expiry (a frozen process: the send itself has a
    total deadline far shorter) could overlap with a second one. That second send carries the same
    ``webhook-id`` (receivers de-duplicate on it), and only the attempt holding the claim stores its outcome.
    """
    now = timezone.now()
    claim = _claim(notification_id, now)
    if claim is None:
        return None
    try:
        notification = Notification.objects.select_related("channel").get(pk=notification_id)
    except Notification.DoesNotExist:  # deleted with its channel meanwhile
        return None
    channel = notification.channel
    if not channel.enabled:
        _store_claimed(notification_id, claim, {
            "status": NotificationStatus.FAILED, "next_attempt_at": None,
            "last_error": f"channel disabled: {channel.disabled_reason}"[:500]})
        return None
    if channel.type == ChannelType.PAGERDUTY and _pagerduty_throttled(notification, now):
        _store_claimed(notification_id, claim, {"next_attempt_at": now + timedelta(seconds=15)})
        return 15.0
    result = delivery.deliver(channel, notification)
    now = timezone.now()
    fields, delay = _attempt_outcome(notification, result, final=False, now=now)
    if result.gone:
        with transaction.atomic():
            if _store_claimed(notification_id, claim, fields):
                _disable_gone_webhook(notification, result, now)
    elif not _store_claimed(notification_id, claim, fields):
        return None  # another worker's attempt took over after our claim expired: it schedules what comes next
    return delay


def notifications_enqueue(notification_ids: list[str]) -> None:
    """Enqueues the delivery of each notification once the current transaction commits."""

    def send() -> None:
        for notification_id in notification_ids:
            enqueue("alerts.tasks.notification_deliver", notification_id)

    transaction.on_commit(send)


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
