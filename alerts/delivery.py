"""Sending one notification to one channel: email (Django mail), PagerDuty Events API v2, signed webhooks.

Customer webhook URLs and PagerDuty both go through the guarded outbound client. The result says whether a
failure is transient (retry with backoff) or permanent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import smtplib
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from http import HTTPStatus

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.utils import timezone
from django.utils.html import escape

from alerts.models import AlertChannel, ChannelType, Notification, NotificationKind
from controlplane import outbound

PAGERDUTY_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}


@dataclass
class DeliveryResult:
    delivered: bool
    status_code: int | None = None
    error: str = ""
    transient: bool = False
    retry_after_s: float | None = None
    gone: bool = False  # 410: the endpoint asks us to stop
    latency_ms: float | None = None  # an HTTP answer's round trip (None: no answer, or not over HTTP)


# --- webhooks: Standard Webhooks signatures -------------------------------------------------------------
def webhook_secret_bytes(secret: str) -> bytes:
    """A ``whsec_``-prefixed secret is base64 (the Standard Webhooks convention); anything else is used as is."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode()


def webhook_signature(*, secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(webhook_secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - timezone.now()).total_seconds())
    except (TypeError, ValueError):
        return None


def _status_text(code: int) -> str:
    """``HTTP 503 Service Unavailable``: the standard phrase, never the server's own (it is the server's text)."""
    try:
        return f"HTTP {code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"HTTP {code}"


def _http_result(response: outbound.OutboundResponse) -> DeliveryResult:
    # The body is never kept or shown: the URL is the customer's, and it may point at a service whose answer
    # they should not read through us. The status, our reason and the latency say enough.
    code = response.status
    latency_ms = round(response.elapsed_ms, 1)
    if 200 <= code < 300:
        return DeliveryResult(True, code, latency_ms=latency_ms)
    status = _status_text(code)
    if 300 <= code < 400:
        return DeliveryResult(False, code, f"{status}: redirects are not followed", latency_ms=latency_ms)
    if code == 410:
        return DeliveryResult(False, code, f"{status}: the endpoint was disabled", gone=True, latency_ms=latency_ms)
    if code == 429:
        return DeliveryResult(False, code, f"{status}: rate limited, will retry", transient=True,
                              retry_after_s=_retry_after(response.headers.get("retry-after")), latency_ms=latency_ms)
    if code >= 500 or code == 408:
        return DeliveryResult(False, code, f"{status}: the endpoint failed, will retry", transient=True,
                              retry_after_s=_retry_after(response.headers.get("retry-after")), latency_ms=latency_ms)
    return DeliveryResult(False, code, f"{status}: the endpoint refused the notification", latency_ms=latency_ms)


def _post_json(url: str, body: bytes, headers: dict[str, str], session: outbound.Session | None = None
               ) -> DeliveryResult:
    try:
        response = outbound.send("POST", url, headers={"Content-Type": "application/json", **headers}, body=body,
                                 timeout=settings.NOTIFICATION_TIMEOUT_S, max_bytes=64 * 1024, session=session)
    except outbound.OutboundBlocked as exc:
        return DeliveryResult(False, None, f"blocked: {exc.message}")
    except outbound.OutboundError as exc:  # its message is the client's own reason, never the server's bytes
        return DeliveryResult(False, None, f"{exc.kind}: {exc.message}", transient=True)
    return _http_result(response)


def send_webhook(channel: AlertChannel, notification: Notification, session: outbound.Session | None = None
                 ) -> DeliveryResult:
    body = json.dumps(notification.payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = int(time.time())
    headers = dict(json.loads(channel.headers or "{}"))
    headers.update({
        "webhook-id": notification.id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": webhook_signature(secret=channel.secret, message_id=notification.id,
                                               timestamp=timestamp, body=body),
        "User-Agent": "mqcloud-webhooks/1",
    })
    return _post_json(channel.config["url"], body, headers, session)


# --- PagerDuty Events API v2 -----------------------------------------------------------------------------
def pagerduty_event(channel: AlertChannel, notification: Notification, *, action: str, dedup_key: str) -> dict:
    payload = notification.payload
    event: dict = {"routing_key": channel.secret, "event_action": action, "dedup_key": dedup_key}
    if action == "trigger":
        event["payload"] = {
            "summary": payload["summary"][:1024],
            "severity": PAGERDUTY_SEVERITY.get(payload.get("severity", "warning"), "warning"),
            # An organization-level incident has "deployment": null.
            "source": (payload.get("deployment") or {}).get("id") or payload.get("organization", {}).get("id")
            or "mqcloud",
            "component": (payload.get("deployment") or {}).get("name", ""),
            "class": payload.get("rule", {}).get("metric", "test"),
            "custom_details": payload,
        }
        if payload.get("links", {}).get("alert"):
            event["links"] = [{"href": payload["links"]["alert"], "text": "Open in mqcloud"}]
    return event


def send_pagerduty(channel: AlertChannel, notification: Notification, session: outbound.Session | None = None
                   ) -> DeliveryResult:
    url = settings.PAGERDUTY_EVENTS_URL
    if notification.kind == NotificationKind.TEST:
        # A test pages nobody for long: its own dedup key, resolved right after the trigger.
        dedup_key = f"mqcloud-test-{notification.id}"
        result = _post_json(url, json.dumps(pagerduty_event(channel, notification, action="trigger",
                                                            dedup_key=dedup_key)).encode(), {}, session)
        if result.delivered:
            _post_json(url, json.dumps(pagerduty_event(channel, notification, action="resolve",
                                                       dedup_key=dedup_key)).encode(), {}, session)
        return result
    action = "resolve" if notification.kind == NotificationKind.RESOLVE else "trigger"
    dedup_key = f"mqcloud-{notification.payload['alert']['id']}"  # stable per incident: trigger and resolve pair
    return _post_json(url, json.dumps(pagerduty_event(channel, notification, action=action,
                                                      dedup_key=dedup_key)).encode(), {}, session)


# --- email -------------------------------------------------------------------------------------------------
def send_email(channel: AlertChannel, notification: Notification, session: outbound.Session | None = None
               ) -> DeliveryResult:
    payload = notification.payload
    subject = f"[mqcloud] {payload['summary']}"[:200]
    lines = [payload["summary"], ""]
    for key in ("event", "severity", "value"):
        if key in payload:
            lines.append(f"{key}: {payload[key]}")
    if payload.get("links", {}).get("alert"):
        lines += ["", f"Details: {payload['links']['alert']}"]
    text = "\n".join(lines) + "\n"
    html = "<html><body>" + "".join(f"<p>{escape(line)}</p>" for line in lines if line) + "</body></html>"
    return send_mail(subject, text, html, channel.config["recipients"])


SENDERS = {ChannelType.EMAIL: send_email, ChannelType.PAGERDUTY: send_pagerduty, ChannelType.WEBHOOK: send_webhook}


# --- notices (alerts.notices): not about an incident, so no alert/rule/deployment in the payload ----------
def notice_email_content(payload: dict) -> tuple[str, str, str]:
    """Subject, text and HTML of a notice email (channel deliveries and the direct fallback alike)."""
    subject = f"[mqcloud] {payload['title']}"[:200]
    lines = [payload["summary"], ""]
    lines += [f"{label}: {value}" for label, value in payload.get("facts", [])]
    links = payload.get("links", {})
    if links.get("console"):
        lines += ["", f"Details: {links['console']}"]
    text = "\n".join(lines) + "\n"
    html = "<html><body>" + "".join(f"<p>{escape(line)}</p>" for line in lines if line) + "</body></html>"
    return subject, text, html


def send_mail(subject: str, text: str, html: str, recipients: list[str]) -> DeliveryResult:
    message = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, to=recipients)
    message.attach_alternative(html, "text/html")
    try:
        message.send()
    except smtplib.SMTPRecipientsRefused as exc:
        return DeliveryResult(False, None, f"recipients refused: {sorted(exc.recipients)}")
    except (smtplib.SMTPException, OSError) as exc:
        return DeliveryResult(False, None, f"smtp: {exc}"[:500], transient=True)
    return DeliveryResult(True)


def send_notice_email(channel: AlertChannel, notification: Notification, session: outbound.Session | None = None
                      ) -> DeliveryResult:
    return send_mail(*notice_email_content(notification.payload), channel.config["recipients"])


def send_notice_pagerduty(channel: AlertChannel, notification: Notification, session: outbound.Session | None = None
                          ) -> DeliveryResult:
    payload = notification.payload
    event = {
        "routing_key": channel.secret,
        "event_action": "trigger",
        # Given by the sender: e.g. one per budget, month and threshold, so a repeat never opens a second page.
        "dedup_key": payload["dedup_key"],
        "payload": {
            "summary": payload["title"][:1024],
            "severity": PAGERDUTY_SEVERITY.get(payload.get("severity", "info"), "info"),
            "source": "mqcloud",
            "component": payload.get("organization", {}).get("id", ""),
            "class": payload["type"],
            "custom_details": payload,
        },
    }
    if payload.get("links", {}).get("console"):
        event["links"] = [{"href": payload["links"]["console"], "text": "Open in mqcloud"}]
    return _post_json(settings.PAGERDUTY_EVENTS_URL, json.dumps(event).encode(), {}, session)


NOTICE_SENDERS = {ChannelType.EMAIL: send_notice_email, ChannelType.PAGERDUTY: send_notice_pagerduty,
                  ChannelType.WEBHOOK: send_webhook}  # a webhook gets the payload as is, signed


def deliver(channel: AlertChannel, notification: Notification, session: outbound.Session | None = None
            ) -> DeliveryResult:
    """``session`` keeps HTTP connections open between deliveries (the batch sender's); email ignores it."""
    if notification.kind == NotificationKind.NOTICE:
        return NOTICE_SENDERS[channel.type](channel, notification, session)
    return SENDERS[channel.type](channel, notification, session)
