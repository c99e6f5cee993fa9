"""Channels failing for days: disabled, audited, and their organization's owners and admins told."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.db.models.functions import Coalesce, Greatest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from alerts.models import AlertChannel, Notification, NotificationStatus
from controlplane.queue import enqueue_on_commit
from projects import facade as project_selectors
from projects.audit import audit_record
from projects.roles import Role
from projects.tenancy import Principal


# --- channels failing for days ------------------------------------------------------------------------------
def _failing_channels(now: datetime) -> list[tuple[str, datetime]]:
    """Enabled channels whose every delivery attempt has failed for ``ALERT_CHANNEL_DISABLE_AFTER_DAYS``: the
    oldest failed delivery since the last success (and since the channel was last enabled) is that old. One
    query, whatever the number of channels."""
    cutoff = now - timedelta(days=settings.ALERT_CHANNEL_DISABLE_AFTER_DAYS)
    attempted = Notification.objects.filter(channel=OuterRef("pk"), attempts__gt=0)
    last_success = attempted.filter(status=NotificationStatus.DELIVERED).order_by("-created_at").values("created_at")
    first_failure = (attempted.exclude(status=NotificationStatus.DELIVERED)
                     .filter(created_at__gte=OuterRef("window_start")).order_by("created_at").values("created_at"))
    return list(AlertChannel.objects.filter(enabled=True, enabled_since__lte=cutoff)
                .annotate(window_start=Greatest("enabled_since", Coalesce(Subquery(last_success[:1]),
                                                                          "enabled_since")))
                .annotate(first_failure=Subquery(first_failure[:1])).filter(first_failure__lte=cutoff)
                .values_list("id", "first_failure"))


def failing_channels_disable(*, now: datetime | None = None) -> list[str]:
    """Disables channels that have only failed for days, audits it, and tells the organization's owners and
    admins by email (once: a disabled channel is not looked at again until someone re-enables it)."""
    now = now or timezone.now()
    disabled = []
    for channel_id, failing_since in _failing_channels(now):
        with transaction.atomic():
            channel = (AlertChannel.objects.select_for_update().select_related("organization")
                       .filter(pk=channel_id, enabled=True).first())
            if channel is None:  # re-checked under the lock: another run got here first
                continue
            days = settings.ALERT_CHANNEL_DISABLE_AFTER_DAYS
            channel.enabled = False
            channel.disabled_reason = (f"Every delivery failed for {days} days (since "
                                       f"{failing_since:%Y-%m-%d %H:%M} UTC), with no success since.")
            channel.updated_at = now
            channel.save(update_fields=["enabled", "disabled_reason", "updated_at"])
            audit_record(principal=Principal.for_system(channel.organization), action="alert_channel.disable",
                         target=channel, changes={"reason": channel.disabled_reason})
            # Once per disabling, after the commit: a rolled-back disabling tells nobody.
            enqueue_on_commit("alerts.tasks.channel_disabled_notify", channel.id)
        disabled.append(channel.id)
    return disabled


def channel_disabled_notify(*, channel_id: str) -> int:
    """Emails the organization's owners and admins that a channel was disabled; returns how many were told."""
    channel = AlertChannel.objects.select_related("organization").filter(pk=channel_id, enabled=False).first()
    if channel is None:  # re-enabled (or deleted) meanwhile: nothing to say any more
        return 0
    recipients = project_selectors.member_emails(organization=channel.organization,
                                                 roles=[Role.OWNER, Role.ADMIN])
    if not recipients:
        return 0
    base = settings.PUBLIC_BASE_URL.rstrip("/")
    failures = channel.notifications.exclude(status=NotificationStatus.DELIVERED).filter(attempts__gt=0)
    context = {"channel": channel, "organization": channel.organization, "reason": channel.disabled_reason,
               "last_error": failures.order_by("-created_at").values_list("last_error", flat=True).first() or "",
               "channels_url": base + reverse("console:alert-channels"),
               "target": channel.config.get("url") or ", ".join(channel.config.get("recipients", []))
               or channel.get_type_display()}
    message = EmailMultiAlternatives(
        subject=f"[mqcloud] Alert channel {channel.name!r} was disabled",
        body=render_to_string("alerts/email/channel_disabled.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL, to=recipients)
    message.attach_alternative(render_to_string("alerts/email/channel_disabled.html", context), "text/html")
    message.send()
    return len(recipients)
