"""Writes of the alerts app: channels, rules, incidents, notification deliveries, metric retention.

Keyword-only, typed, atomic; every customer-visible write is audited. Deliveries are recorded first and
sent by Celery tasks enqueued on commit.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce, Greatest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from alerts import delivery
from alerts.models import (
    ORGANIZATION_METRICS,
    Alert,
    AlertChannel,
    AlertRule,
    ChannelType,
    MetricSample,
    Notification,
    NotificationKind,
    NotificationStatus,
)
from controlplane import errors, outbound
from deployments.models import Deployment
from projects import selectors as project_selectors
from projects.models import Organization, Project
from projects.roles import Perm, Role
from projects.services import audit_record
from projects.tenancy import Principal

MAX_RECIPIENTS = 20
ROUTING_KEY_RE = re.compile(r"^[A-Za-z0-9]{32}$")
HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
RESERVED_HEADERS = {"host", "content-length", "content-type", "transfer-encoding", "connection", "webhook-id",
                    "webhook-timestamp", "webhook-signature"}
WRITE_PERM = Perm.DEPLOYMENTS_WRITE
# Channels are organization-wide (every project's rules and the budgets notify through them), so changing
# one is an organization setting: owners and admins, and only those not limited to projects.
CHANNEL_PERM = Perm.ORGANIZATION_MANAGE


def _invalid(field: str, message: str) -> errors.ValidationFailed:
    return errors.ValidationFailed("The request has invalid fields.", errors={field: [message]})


# --- channels ----------------------------------------------------------------------------------------------
def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def channel_can_manage(principal: Principal) -> bool:
    """Who may change channels (and send tests); everyone else reads them with webhook URLs masked."""
    return principal.has(CHANNEL_PERM) and not principal.is_project_limited


def channel_require_manager(*, principal: Principal) -> None:
    principal.require(CHANNEL_PERM)
    if principal.is_project_limited:
        raise errors.PermissionDenied("Alert channels are shared by the whole organization: a member limited to "
                                      "projects cannot change or test them.")


def _check_webhook_url(url: str) -> None:
    if not isinstance(url, str) or not url or len(url) > 2000:
        raise _invalid("config", "url: a http(s) URL is required.")
    try:
        outbound.check_url(url)
    except outbound.OutboundBlocked as exc:
        raise _invalid("config", f"url: {exc.message}") from exc
    except outbound.OutboundError as exc:
        raise _invalid("config", f"url: {exc.message}") from exc


def _apply_config(channel: AlertChannel, config: dict[str, Any], *, creating: bool) -> dict[str, Any] | None:
    """Validates ``config`` for the channel's type and stores it; returns a generated secret to show once."""
    if not isinstance(config, dict):
        raise _invalid("config", "Must be an object.")
    generated: dict[str, Any] | None = None
    if channel.type == ChannelType.EMAIL:
        unknown = set(config) - {"recipients"}
        recipients = config.get("recipients", None if creating else channel.config.get("recipients"))
        if unknown:
            raise _invalid("config", f"Unknown keys for an email channel: {sorted(unknown)}.")
        if not isinstance(recipients, list) or not recipients or len(recipients) > MAX_RECIPIENTS:
            raise _invalid("config", f"recipients: a list of 1 to {MAX_RECIPIENTS} email addresses.")
        for address in recipients:
            try:
                if not isinstance(address, str) or len(address) > 254:
                    raise DjangoValidationError("invalid")
                validate_email(address)
            except DjangoValidationError as exc:
                raise _invalid("config", f"recipients: {address!r} is not a valid email address.") from exc
        channel.config = {"recipients": sorted(set(recipients), key=recipients.index)}
    elif channel.type == ChannelType.PAGERDUTY:
        unknown = set(config) - {"routing_key"}
        if unknown:
            raise _invalid("config", f"Unknown keys for a PagerDuty channel: {sorted(unknown)}.")
        key = config.get("routing_key")
        if key is None and not creating:
            return None
        if not isinstance(key, str) or not ROUTING_KEY_RE.match(key):
            raise _invalid("config", "routing_key: the 32-character integration key of an Events API v2 service.")
        channel.secret = key
        channel.config = {}
    else:
        unknown = set(config) - {"url", "secret", "headers"}
        if unknown:
            raise _invalid("config", f"Unknown keys for a webhook channel: {sorted(unknown)}.")
        url = config.get("url", None if creating else channel.config.get("url"))
        _check_webhook_url(url)
        channel.config = {"url": url}
        if "secret" in config:
            secret = config["secret"]
            if not isinstance(secret, str) or not 16 <= len(secret) <= 200:
                raise _invalid("config", "secret: 16 to 200 characters (Standard Webhooks: whsec_<base64>).")
            if secret.startswith("whsec_"):
                try:
                    base64.b64decode(secret.removeprefix("whsec_"), validate=True)
                except ValueError as exc:
                    raise _invalid("config", "secret: whsec_ must be followed by base64.") from exc
            channel.secret = secret
        elif creating:
            channel.secret = new_webhook_secret()
            generated = {"secret": channel.secret}
        if "headers" in config:
            headers = config["headers"] or {}
            if not isinstance(headers, dict) or len(headers) > 20:
                raise _invalid("config", "headers: an object of at most 20 header names and values.")
            for name, value in headers.items():
                if not HEADER_NAME_RE.match(name) or name.lower() in RESERVED_HEADERS:
                    raise _invalid("config", f"headers: {name!r} is not a header you may set.")
                if not isinstance(value, str) or len(value) > 2000 or any(c in value for c in "\r\n\0"):
                    raise _invalid("config", f"headers: the value of {name!r} must be a single-line string.")
            channel.headers = json.dumps(headers)
    return generated


def channel_create(*, principal: Principal, name: str, type: str, config: dict[str, Any]
                   ) -> tuple[AlertChannel, dict[str, Any] | None]:
    channel_require_manager(principal=principal)
    channel = AlertChannel(organization=principal.organization, name=name.strip(), type=type)
    generated = _apply_config(channel, config, creating=True)
    with transaction.atomic():
        channel.save()
        audit_record(principal=principal, action="alert_channel.create", target=channel,
                     changes={"name": channel.name, "type": channel.type, "config": channel.config})
    return channel, generated


def channel_update(*, principal: Principal, channel: AlertChannel, name: str | None = None,
                   config: dict[str, Any] | None = None, enabled: bool | None = None) -> AlertChannel:
    channel_require_manager(principal=principal)
    with transaction.atomic():
        channel = AlertChannel.objects.select_for_update().get(pk=channel.pk, organization=principal.organization)
        changes: dict[str, Any] = {}
        if name is not None and name.strip() != channel.name:
            changes["name"] = [channel.name, name.strip()]
            channel.name = name.strip()
        if config is not None:
            before = channel.config
            _apply_config(channel, config, creating=False)
            changes["config"] = [before, channel.config]
            if {"secret", "routing_key", "headers"} & set(config):
                changes["secrets_changed"] = sorted({"secret", "routing_key", "headers"} & set(config))
        if enabled is not None and enabled != channel.enabled:
            changes["enabled"] = [channel.enabled, enabled]
            channel.enabled = enabled
            if enabled:
                # A fresh start: failures from before do not count towards disabling it again.
                channel.disabled_reason = ""
                channel.enabled_since = timezone.now()
        channel.updated_at = timezone.now()
        channel.save()
        audit_record(principal=principal, action="alert_channel.update", target=channel, changes=changes)
    return channel


def channel_delete(*, principal: Principal, channel: AlertChannel) -> None:
    channel_require_manager(principal=principal)
    with transaction.atomic():
        audit_record(principal=principal, action="alert_channel.delete", target=channel,
                     changes={"name": channel.name, "type": channel.type})
        channel.delete()


def _test_payload(channel: AlertChannel, principal: Principal) -> dict[str, Any]:
    return {
        "type": "alert.test",
        "event": "test",
        "test": True,
        "summary": f"TEST notification from mqcloud to channel {channel.name!r} - no action needed",
        "severity": "info",
        "organization": {"id": principal.organization.id},
        "channel": {"id": channel.id, "name": channel.name},
        "sent_at": timezone.now().isoformat(),
        "links": {"console": settings.PUBLIC_BASE_URL},
    }


def channel_test(*, principal: Principal, channel: AlertChannel) -> tuple[Notification, delivery.DeliveryResult]:
    """Sends a clearly marked test notification now (one attempt, no retries) and records it."""
    channel_require_manager(principal=principal)
    notification = Notification.objects.create(organization=principal.organization, channel=channel,
                                               kind=NotificationKind.TEST, payload=_test_payload(channel, principal))
    result = delivery.deliver(channel, notification)
    _record_attempt(notification, result, final=True)
    audit_record(principal=principal, action="alert_channel.test", target=channel,
                 changes={"delivered": result.delivered, "status_code": result.status_code})
    return notification, result


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
    return fields, delay


def _disable_gone_webhook(notification: Notification, result: delivery.DeliveryResult, now: datetime) -> None:
    if result.gone and notification.channel.type == ChannelType.WEBHOOK:
        AlertChannel.objects.filter(pk=notification.channel_id).update(
            enabled=False, disabled_reason="The endpoint answered 410 Gone.", updated_at=now)


def _record_attempt(notification: Notification, result: delivery.DeliveryResult, *, final: bool) -> float | None:
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


def _enqueue(notification_ids: list[str]) -> None:
    from alerts.tasks import notification_deliver

    def send() -> None:
        for notification_id in notification_ids:
            notification_deliver.delay(notification_id)

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
        _enqueue(ids)
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


def _notify(alerts: list[Alert], kind: str, now: datetime) -> list[str]:
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
    _enqueue(ids)
    return ids


# --- rules ---------------------------------------------------------------------------------------------------
def _rule_refs(principal: Principal, *, project_id: str | None, deployment_id: str | None,
               channel_ids: list[str] | None) -> dict[str, Any]:
    refs: dict[str, Any] = {}
    if project_id is not None:
        project = Project.objects.filter(organization=principal.organization, pk=project_id).first()
        if project is None or not principal.can_see_project(project.id):
            raise _invalid("project", f"No project {project_id}.")
        refs["project"] = project
    if deployment_id is not None:
        deployment = Deployment.objects.filter(organization=principal.organization, pk=deployment_id).exclude(
            status="deleted").first()
        if deployment is None or not principal.can_see_project(deployment.project_id):
            raise _invalid("deployment", f"No deployment {deployment_id}.")
        refs["deployment"] = deployment
    if channel_ids is not None:
        channels = list(AlertChannel.objects.filter(organization=principal.organization, pk__in=channel_ids))
        missing = sorted(set(channel_ids) - {c.id for c in channels})
        if missing:
            raise _invalid("channels", f"No alert channel(s) {', '.join(missing)}.")
        refs["channels"] = channels
    return refs


def _check_organization_metric(metric: str, deployment: Deployment | None) -> None:
    if metric in ORGANIZATION_METRICS and deployment is not None:
        raise _invalid("deployment", f"{metric} is a condition of the whole organization: leave deployment empty.")


def rule_create(*, principal: Principal, name: str, project: str, metric: str, operator: str, threshold: Any,
                duration_s: int = 300, severity: str = "warning", channels: list[str] | None = None,
                repeat_interval_s: int = 3600, enabled: bool = True, deployment: str | None = None) -> AlertRule:
    principal.require(WRITE_PERM)
    refs = _rule_refs(principal, project_id=project, deployment_id=deployment, channel_ids=channels or [])
    if "deployment" in refs and refs["deployment"].project_id != refs["project"].id:
        raise _invalid("deployment", "The deployment is not in the rule's project.")
    _check_organization_metric(metric, refs.get("deployment"))
    rule = AlertRule(organization=principal.organization, project=refs["project"], deployment=refs.get("deployment"),
                     name=name.strip(), metric=metric, operator=operator, threshold=threshold, duration_s=duration_s,
                     severity=severity, repeat_interval_s=repeat_interval_s, enabled=enabled)
    with transaction.atomic():
        rule.save()
        rule.channels.set(refs["channels"])
        audit_record(principal=principal, action="alert_rule.create", target=rule,
                     changes={"name": rule.name, "metric": metric, "operator": operator, "threshold": str(threshold),
                              "duration_s": duration_s, "channels": [c.id for c in refs["channels"]]})
    return rule


RULE_FIELDS = ("name", "metric", "operator", "threshold", "duration_s", "severity", "repeat_interval_s", "enabled")


def rule_update(*, principal: Principal, rule: AlertRule, **updates: Any) -> AlertRule:
    principal.require(WRITE_PERM)
    refs = _rule_refs(principal, project_id=None,
                      deployment_id=updates.get("deployment") if updates.get("deployment") else None,
                      channel_ids=updates.get("channels"))
    with transaction.atomic():
        rule = AlertRule.objects.select_for_update().get(pk=rule.pk, organization=principal.organization)
        changes: dict[str, Any] = {}
        for field in RULE_FIELDS:
            if field in updates and updates[field] != getattr(rule, field):
                changes[field] = [str(getattr(rule, field)), str(updates[field])]
                setattr(rule, field, updates[field])
        if "deployment" in updates:
            new = refs.get("deployment")
            if new is not None and new.project_id != rule.project_id:
                raise _invalid("deployment", "The deployment is not in the rule's project.")
            if (new.id if new else None) != rule.deployment_id:
                changes["deployment"] = [rule.deployment_id, new.id if new else None]
                rule.deployment = new
        _check_organization_metric(rule.metric, rule.deployment)
        rule.updated_at = timezone.now()
        rule.save()
        if "channels" in refs:
            changes["channels"] = [c.id for c in refs["channels"]]
            rule.channels.set(refs["channels"])
        audit_record(principal=principal, action="alert_rule.update", target=rule, changes=changes)
    return rule


def rule_delete(*, principal: Principal, rule: AlertRule) -> None:
    principal.require(WRITE_PERM)
    with transaction.atomic():
        audit_record(principal=principal, action="alert_rule.delete", target=rule, changes={"name": rule.name})
        rule.delete()


# --- defaults created with each project -----------------------------------------------------------------------
OWNERS_CHANNEL_KEY = "owners"
#: The rules every new project starts with; ordinary rules afterwards (editable, deletable, API-visible).
DEFAULT_RULES: tuple[dict[str, Any], ...] = (
    {"default_key": "connections_high", "name": "Connections above 80% of the spec", "metric": "connections_pct",
     "operator": ">", "threshold": Decimal(80), "duration_s": 300, "severity": "warning"},
    {"default_key": "deployment_failed", "name": "Deployment failed", "metric": "deployment_failed",
     "operator": ">=", "threshold": Decimal(1), "duration_s": 0, "severity": "critical"},
    {"default_key": "peering_failed", "name": "VPC peering failed", "metric": "peering_failed",
     "operator": ">=", "threshold": Decimal(1), "duration_s": 0, "severity": "critical"},
    # Spikes, not background noise: a few failed logins or dropped QoS 0 messages a second are normal.
    {"default_key": "auth_failures_spike", "name": "Authentication failures spike", "metric": "auth_failures_rate",
     "operator": ">", "threshold": Decimal(50), "duration_s": 300, "severity": "warning"},
    {"default_key": "messages_dropped_spike", "name": "Dropped messages spike", "metric": "messages_dropped_rate",
     "operator": ">", "threshold": Decimal(100), "duration_s": 600, "severity": "warning"},
)
#: Organization conditions: one rule per organization, created with its first project (re-notified daily).
ORGANIZATION_DEFAULT_RULES: tuple[dict[str, Any], ...] = (
    {"default_key": "payment_failed", "name": "Payment failed", "metric": "payment_failed", "operator": ">=",
     "threshold": Decimal(1), "duration_s": 0, "severity": "critical", "repeat_interval_s": 86400},
)


def owners_channel_ensure(*, organization: Organization, create: bool) -> AlertChannel | None:
    """The organization's default "Owners (email)" channel, to its owners' addresses as they are now.

    Created only when asked (with the organization's first project, or by the backfill) and only if the
    organization has no channel yet: one it deleted is not brought back, and one that set up its own channels
    does not get an extra one behind its back.
    """
    channel = AlertChannel.objects.filter(organization=organization, default_key=OWNERS_CHANNEL_KEY).first()
    if channel is not None or not create or AlertChannel.objects.filter(organization=organization).exists():
        return channel
    recipients = project_selectors.member_emails(organization=organization, roles=[Role.OWNER])[:MAX_RECIPIENTS]
    if not recipients:
        return None
    channel = AlertChannel(organization=organization, name="Owners (email)", type=ChannelType.EMAIL,
                           config={"recipients": recipients}, default_key=OWNERS_CHANNEL_KEY)
    try:
        with transaction.atomic():  # a savepoint: a concurrent first project may have created it
            channel.save()
    except IntegrityError:
        return AlertChannel.objects.filter(organization=organization, default_key=OWNERS_CHANNEL_KEY).first()
    return channel


def project_default_rules_create(*, project: Project) -> dict[str, Any]:
    """The default rules of a new project, in the caller's transaction; returns what it created, for the audit
    event of the project's creation (``projects.services.project_create`` and signup call it). No permission
    check of its own: it is part of creating the project."""
    organization = project.organization
    first = not Project.objects.filter(organization=organization).exclude(pk=project.pk).exists()
    specs = list(DEFAULT_RULES)
    if first or not AlertRule.objects.filter(
            organization=organization, default_key__in=[r["default_key"] for r in ORGANIZATION_DEFAULT_RULES]).exists():
        specs += ORGANIZATION_DEFAULT_RULES
    with transaction.atomic():
        channel = owners_channel_ensure(organization=organization, create=first)
        now = timezone.now()
        rules = AlertRule.objects.bulk_create(
            AlertRule(organization=organization, project=project, created_at=now, updated_at=now, **spec)
            for spec in specs)
        if channel is not None:
            through = AlertRule.channels.through
            through.objects.bulk_create(through(alertrule_id=rule.id, alertchannel_id=channel.id) for rule in rules)
    return {"rules": {rule.id: rule.default_key for rule in rules}, "channel": channel.id if channel else None}


def organization_rules_rehome(*, project: Project) -> list[str]:
    """Moves the organization-condition rules (``payment_failed``) stored on ``project`` to the organization's
    oldest other project, in the caller's transaction, before ``project`` is deleted; returns their ids.

    Such a rule is about the whole organization and only lives on a project because every rule has one: left
    on the project, it (and its open incident) would be cascaded away with it and the organization would stop
    hearing about failed payments without anyone choosing so. With no other project left they go; the next
    project created gets the defaults again (``project_default_rules_create``).
    """
    heir = (Project.objects.filter(organization_id=project.organization_id).exclude(pk=project.pk)
            .order_by("created_at", "id").first())
    rules = AlertRule.objects.filter(project=project, metric__in=ORGANIZATION_METRICS)
    ids = sorted(rules.values_list("id", flat=True))
    if heir is None or not ids:
        return []
    rules.update(project=heir, updated_at=timezone.now())
    return ids


def default_rules_backfill() -> int:
    """Default rules for projects created before they existed (those with no default rule yet), audited as the
    system; returns how many projects got them. Idempotent: a rerun finds nothing to do."""
    done = 0
    has_defaults = AlertRule.objects.filter(project=OuterRef("pk")).exclude(default_key="")
    for project in (Project.objects.filter(~Exists(has_defaults)).select_related("organization")
                    .order_by("organization_id", "created_at", "id")):
        organization = project.organization
        with transaction.atomic():
            owners_channel_ensure(organization=organization, create=True)
            created = project_default_rules_create(project=project)
            audit_record(principal=Principal.for_system(organization), action="alert_rule.defaults_create",
                         target=project, changes=created)
        done += 1
    return done


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
            _enqueue_disabled_notice(channel.id)
        disabled.append(channel.id)
    return disabled


def _enqueue_disabled_notice(channel_id: str) -> None:
    from alerts.tasks import channel_disabled_notify

    transaction.on_commit(lambda: channel_disabled_notify.delay(channel_id))


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


# --- metrics retention -----------------------------------------------------------------------------------------
def metric_samples_purge(*, now: datetime | None = None) -> int:
    """Deletes samples older than the retention limit; returns how many went."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.METRICS_RETENTION_DAYS)
    deleted, _ = MetricSample.objects.filter(at__lt=cutoff).delete()
    return deleted
