"""Alert channels: validation of each type's configuration, create/update/delete, and test sends.

Channels are organization-wide; changing one is an organization setting (``CHANNEL_PERM``).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from alerts import delivery
from alerts.models import AlertChannel, ChannelType, Notification, NotificationKind
from alerts.services.notifications import notification_attempt_record
from alerts.services.validation import INVALID_FIELDS
from controlplane import errors, outbound
from controlplane.db import lock_row
from controlplane.errors import field_invalid
from projects.audit import audit_record
from projects.roles import Perm
from projects.tenancy import Principal

MAX_RECIPIENTS = 20
ROUTING_KEY_RE = re.compile(r"^[A-Za-z0-9]{32}$")
HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
RESERVED_HEADERS = {"host", "content-length", "content-type", "transfer-encoding", "connection", "webhook-id",
                    "webhook-timestamp", "webhook-signature"}
# Channels are organization-wide (every project's rules and the budgets notify through them), so changing
# one is an organization setting: owners and admins, and only those not limited to projects.
CHANNEL_PERM = Perm.ORGANIZATION_MANAGE


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
        raise field_invalid("config", "url: a http(s) URL is required.", detail=INVALID_FIELDS)
    try:
        outbound.check_url(url)
    except outbound.OutboundBlocked as exc:
        raise field_invalid("config", f"url: {exc.message}", detail=INVALID_FIELDS) from exc
    except outbound.OutboundError as exc:
        raise field_invalid("config", f"url: {exc.message}", detail=INVALID_FIELDS) from exc


def _apply_config(channel: AlertChannel, config: dict[str, Any], *, creating: bool) -> dict[str, Any] | None:
    """Validates ``config`` for the channel's type and stores it; returns a generated secret to show once."""
    if not isinstance(config, dict):
        raise field_invalid("config", "Must be an object.", detail=INVALID_FIELDS)
    generated: dict[str, Any] | None = None
    if channel.type == ChannelType.EMAIL:
        unknown = set(config) - {"recipients"}
        recipients = config.get("recipients", None if creating else channel.config.get("recipients"))
        if unknown:
            raise field_invalid("config", f"Unknown keys for an email channel: {sorted(unknown)}.",
                                detail=INVALID_FIELDS)
        if not isinstance(recipients, list) or not recipients or len(recipients) > MAX_RECIPIENTS:
            raise field_invalid("config", f"recipients: a list of 1 to {MAX_RECIPIENTS} email addresses.",
                                detail=INVALID_FIELDS)
        for address in recipients:
            try:
                if not isinstance(address, str) or len(address) > 254:
                    raise DjangoValidationError("invalid")
                validate_email(address)
            except DjangoValidationError as exc:
                raise field_invalid("config", f"recipients: {address!r} is not a valid email address.",
                                    detail=INVALID_FIELDS) from exc
        channel.config = {"recipients": sorted(set(recipients), key=recipients.index)}
    elif channel.type == ChannelType.PAGERDUTY:
        unknown = set(config) - {"routing_key"}
        if unknown:
            raise field_invalid("config", f"Unknown keys for a PagerDuty channel: {sorted(unknown)}.",
                                detail=INVALID_FIELDS)
        key = config.get("routing_key")
        if key is None and not creating:
            return None
        if not isinstance(key, str) or not ROUTING_KEY_RE.match(key):
            raise field_invalid("config", "routing_key: the 32-character integration key of an Events API v2 service.",
                                detail=INVALID_FIELDS)
        channel.secret = key
        channel.config = {}
    else:
        unknown = set(config) - {"url", "secret", "headers"}
        if unknown:
            raise field_invalid("config", f"Unknown keys for a webhook channel: {sorted(unknown)}.",
                                detail=INVALID_FIELDS)
        url = config.get("url", None if creating else channel.config.get("url"))
        _check_webhook_url(url)
        channel.config = {"url": url}
        if "secret" in config:
            secret = config["secret"]
            if not isinstance(secret, str) or not 16 <= len(secret) <= 200:
                raise field_invalid("config", "secret: 16 to 200 characters (Standard Webhooks: whsec_<base64>).",
                                    detail=INVALID_FIELDS)
            if secret.startswith("whsec_"):
                try:
                    base64.b64decode(secret.removeprefix("whsec_"), validate=True)
                except ValueError as exc:
                    raise field_invalid("config", "secret: whsec_ must be followed by base64.",
                                        detail=INVALID_FIELDS) from exc
            channel.secret = secret
        elif creating:
            channel.secret = new_webhook_secret()
            generated = {"secret": channel.secret}
        if "headers" in config:
            headers = config["headers"] or {}
            if not isinstance(headers, dict) or len(headers) > 20:
                raise field_invalid("config", "headers: an object of at most 20 header names and values.",
                                    detail=INVALID_FIELDS)
            for name, value in headers.items():
                if not HEADER_NAME_RE.match(name) or name.lower() in RESERVED_HEADERS:
                    raise field_invalid("config", f"headers: {name!r} is not a header you may set.",
                                        detail=INVALID_FIELDS)
                if not isinstance(value, str) or len(value) > 2000 or any(c in value for c in "\r\n\0"):
                    raise field_invalid("config", f"headers: the value of {name!r} must be a single-line string.",
                                        detail=INVALID_FIELDS)
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
        channel = lock_row(AlertChannel, channel.pk, organization=principal.organization)
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
    notification_attempt_record(notification, result, final=True)
    audit_record(principal=principal, action="alert_channel.test", target=channel,
                 changes={"delivered": result.delivered, "status_code": result.status_code})
    return notification, result
