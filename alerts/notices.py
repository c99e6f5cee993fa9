"""Notices: organization-level messages that are not about an incident (a budget threshold crossed).

They ride the alert delivery machinery: one ``Notification`` (kind ``notice``, no alert) per channel,
delivered by the same task with the same retries, delivery log, webhook signatures and PagerDuty
throttle. An organization without a channel for them is told by email (``organization_notice_email``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.utils import timezone

from alerts import delivery
from alerts.models import AlertChannel, Notification, NotificationKind, Severity
from alerts.services.notifications import notifications_enqueue
from controlplane.queue import enqueue_on_commit
from projects.models import Organization


def notice_payload(*, organization: Organization, event_type: str, title: str, summary: str, details: dict[str, Any],
                   severity: str, dedup_key: str, facts: list[tuple[str, str]] | None = None,
                   now: datetime | None = None) -> dict[str, Any]:
    """The body every channel gets (as is for webhooks). ``facts`` are label/value lines for people."""
    if severity not in Severity.values:
        raise ValueError(f"severity must be one of {Severity.values}")
    return {
        "type": event_type,
        "event": event_type,
        "test": False,
        "title": title,
        "summary": summary,
        "severity": severity,
        "dedup_key": dedup_key,
        "organization": {"id": organization.id, "name": organization.name},
        **details,
        "facts": [[label, value] for label, value in (facts or [])],
        "sent_at": (now or timezone.now()).isoformat(),
    }


def organization_notice_send(*, organization: Organization, channels: Iterable[AlertChannel], event_type: str,
                             title: str, summary: str, details: dict[str, Any], severity: str, dedup_key: str,
                             facts: list[tuple[str, str]] | None = None, now: datetime | None = None) -> list[str]:
    """Records one notice per enabled channel of ``organization`` and enqueues their delivery on commit;
    returns the notification ids. ``dedup_key`` pairs PagerDuty events (and lets receivers de-duplicate)."""
    now = now or timezone.now()
    payload = notice_payload(organization=organization, event_type=event_type, title=title, summary=summary,
                             details=details, severity=severity, dedup_key=dedup_key, facts=facts, now=now)
    notifications = [Notification(organization=organization, channel=channel, alert=None,
                                  kind=NotificationKind.NOTICE, payload=payload, next_attempt_at=now)
                     for channel in channels if channel.enabled and channel.organization_id == organization.id]
    Notification.objects.bulk_create(notifications)
    ids = [n.id for n in notifications]
    notifications_enqueue(ids)
    return ids


def organization_notice_email(*, organization: Organization, recipients: list[str], event_type: str, title: str,
                              summary: str, details: dict[str, Any], severity: str, dedup_key: str,
                              facts: list[tuple[str, str]] | None = None, now: datetime | None = None) -> int:
    """Emails a notice to people directly (no channel): sent on commit by a task that retries SMTP trouble.
    Returns how many recipients it is for."""
    recipients = sorted(set(recipients))
    if not recipients:
        return 0
    payload = notice_payload(organization=organization, event_type=event_type, title=title, summary=summary,
                             details=details, severity=severity, dedup_key=dedup_key, facts=facts, now=now)
    subject, text, html = delivery.notice_email_content(payload)
    enqueue_on_commit("alerts.tasks.notice_email_send", subject, text, html, recipients)
    return len(recipients)
