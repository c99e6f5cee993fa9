"""Alert channels over the API: validation, write-only secrets, roles, and test sends to real local stand-ins."""

from __future__ import annotations

import pytest
from django.test import override_settings

from alerts.models import AlertChannel, Notification
from alerts.tests.factories import AlertChannelFactory
from alerts.tests.standins import Receiver, verify_standard_webhook
from projects.models import AuditEvent
from projects.roles import Role
from projects.tests.factories import OrganizationFactory, make_api_key

pytestmark = pytest.mark.django_db

ROUTING_KEY = "R0123456789abcdef0123456789ABCDE"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def api(make_client):
    organization = OrganizationFactory()
    _, secret = make_api_key(organization)
    client = make_client(secret)
    client.organization = organization
    return client


@pytest.fixture(autouse=True)
def _loopback():
    with override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True):
        yield




def create(api, **body):
    return api.post("/api/v1/alert-channels", body, format="json")


@pytest.mark.parametrize("config", [
    {"recipients": ["not-an-email"]},
    {"recipients": []},
    {"recipients": [f"u{i}@example.com" for i in range(21)]},
    {"recipients": ["a@example.com"], "extra": 1},
])
def test_invalid_email_config_is_400(api, config):
    response = create(api, name="ops", type="email", config=config)
    assert response.status_code == 400, response.json()
    assert "config" in response.json()["errors"]


@pytest.mark.parametrize("key", ["short", "x" * 33, "R0123456789abcdef0123456789ABCD!"])
def test_invalid_routing_key_is_400(api, key):
    assert create(api, name="pd", type="pagerduty", config={"routing_key": key}).status_code == 400


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data", "http://10.0.0.5/hook",
                                 "ftp://example.com/x", "http://[::1]:80/"])
def test_blocked_webhook_url_is_400(api, url):
    with override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=False):
        response = create(api, name="hook", type="webhook", config={"url": url, "secret": SECRET})
    assert response.status_code == 400, response.json()
    assert not AlertChannel.objects.exists()


def test_secrets_are_write_only_and_encrypted(api):
    response = create(api, name="hook", type="webhook",
                      config={"url": "http://127.0.0.1:9/hook", "secret": SECRET, "headers": {"X-Token": "tok-123"}})
    assert response.status_code == 201, response.json()
    channel_id = response.json()["id"]
    pd = create(api, name="pd", type="pagerduty", config={"routing_key": ROUTING_KEY}).json()
    for path in (f"/api/v1/alert-channels/{channel_id}", f"/api/v1/alert-channels/{pd['id']}",
                 "/api/v1/alert-channels"):
        text = api.get(path).content.decode()
        assert SECRET not in text and "tok-123" not in text and ROUTING_KEY not in text
    body = api.get(f"/api/v1/alert-channels/{channel_id}").json()
    assert body["config"] == {"url": "http://127.0.0.1:9/hook", "secret": "•••", "has_secret": True,
                              "headers": {"X-Token": "•••"}}
    assert api.get(f"/api/v1/alert-channels/{pd['id']}").json()["config"]["routing_key"] == "•••"
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT secret, headers FROM alerts_alertchannel WHERE id = %s", [channel_id])
        stored_secret, stored_headers = cursor.fetchone()
    assert SECRET not in stored_secret and "tok-123" not in stored_headers
    assert not any(SECRET in str(e.changes) or "tok-123" in str(e.changes) for e in AuditEvent.objects.all())


def test_webhook_without_secret_gets_one_shown_once(api):
    response = create(api, name="hook", type="webhook", config={"url": "http://127.0.0.1:9/hook"})
    assert response.status_code == 201
    assert response.json()["config"]["secret"].startswith("whsec_")
    assert api.get(f"/api/v1/alert-channels/{response.json()['id']}").json()["config"]["secret"] == "•••"


def test_patch_keeps_secret_unless_given(api):
    channel_id = create(api, name="hook", type="webhook", config={"url": "http://127.0.0.1:9/a", "secret": SECRET}
                        ).json()["id"]
    response = api.patch(f"/api/v1/alert-channels/{channel_id}", {"name": "renamed",
                                                                  "config": {"url": "http://127.0.0.1:9/b"}},
                         format="json")
    assert response.status_code == 200, response.json()
    channel = AlertChannel.objects.get(pk=channel_id)
    assert (channel.name, channel.config["url"], channel.secret) == ("renamed", "http://127.0.0.1:9/b", SECRET)
    with override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=False):
        assert api.patch(f"/api/v1/alert-channels/{channel_id}", {"config": {"url": "http://169.254.169.254/"}},
                         format="json").status_code == 400
    assert api.delete(f"/api/v1/alert-channels/{channel_id}").status_code == 204
    assert api.get(f"/api/v1/alert-channels/{channel_id}").status_code == 404


def test_viewer_cannot_write(make_client):
    organization = OrganizationFactory()
    _, secret = make_api_key(organization, role=Role.VIEWER)
    viewer = make_client(secret)
    channel = AlertChannelFactory(organization=organization)
    assert viewer.get("/api/v1/alert-channels").status_code == 200
    assert create(viewer, name="x", type="email", config={"recipients": ["a@example.com"]}).status_code == 403
    assert viewer.patch(f"/api/v1/alert-channels/{channel.id}", {"name": "y"}, format="json").status_code == 403
    assert viewer.delete(f"/api/v1/alert-channels/{channel.id}").status_code == 403
    assert viewer.post(f"/api/v1/alert-channels/{channel.id}/test").status_code == 403


def test_stranger_gets_404(api):
    other = AlertChannelFactory()
    assert api.get(f"/api/v1/alert-channels/{other.id}").status_code == 404
    assert api.post(f"/api/v1/alert-channels/{other.id}/test").status_code == 404


def test_email_test_send_over_real_smtp(api, smtp):
    channel_id = create(api, name="ops", type="email", config={"recipients": ["ops@example.com"]}).json()["id"]
    response = api.post(f"/api/v1/alert-channels/{channel_id}/test")
    assert response.status_code == 200
    body = response.json()
    assert body["delivered"] is True and body["error"] is None
    (rcpts, message), = smtp.messages
    assert rcpts == ["ops@example.com"]
    assert "TEST" in message["Subject"]
    assert message.get_body(("plain",)) is not None and message.get_body(("html",)) is not None
    notification = Notification.objects.get(pk=body["delivery"])
    assert (notification.kind, notification.status, notification.attempts) == ("test", "delivered", 1)
    log = api.get("/api/v1/notifications", {"channel": channel_id}).json()["results"]
    assert [(n["kind"], n["status"]) for n in log] == [("test", "delivered")]


def test_pagerduty_test_send_triggers_and_resolves(api):
    with Receiver() as pagerduty, override_settings(PAGERDUTY_EVENTS_URL=pagerduty.url + "/v2/enqueue"):
        channel_id = create(api, name="pd", type="pagerduty", config={"routing_key": ROUTING_KEY}).json()["id"]
        body = api.post(f"/api/v1/alert-channels/{channel_id}/test").json()
    assert body["delivered"] is True and body["status_code"] == 202
    trigger, resolve = pagerduty.json_bodies()
    assert trigger["routing_key"] == ROUTING_KEY and trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == resolve["dedup_key"] and trigger["dedup_key"].startswith("mqcloud-test-")
    assert "TEST" in trigger["payload"]["summary"] and trigger["payload"]["severity"] == "info"
    assert trigger["payload"]["source"]
    assert resolve["event_action"] == "resolve"


def test_webhook_test_send_is_signed(api):
    with Receiver() as receiver:
        channel_id = create(api, name="hook", type="webhook", config={
            "url": receiver.url + "/hooks", "secret": SECRET, "headers": {"X-Token": "tok-123"}}).json()["id"]
        body = api.post(f"/api/v1/alert-channels/{channel_id}/test").json()
    assert body["delivered"] is True and body["status_code"] == 202
    (request,) = receiver.requests
    payload = verify_standard_webhook(request, SECRET)
    assert payload["type"] == "alert.test" and payload["test"] is True
    assert request["headers"]["x-token"] == "tok-123"
    assert request["headers"]["webhook-id"] == body["delivery"]
    with pytest.raises(AssertionError):
        verify_standard_webhook(request, "whsec_" + "QUJD" * 8)


def test_webhook_test_send_reports_failure(api):
    with Receiver(lambda r: (500, {}, b"boom")) as receiver:
        channel_id = create(api, name="hook", type="webhook", config={"url": receiver.url, "secret": SECRET}
                            ).json()["id"]
        body = api.post(f"/api/v1/alert-channels/{channel_id}/test").json()
    assert body["delivered"] is False and body["status_code"] == 500 and "500" in body["error"]
    assert Notification.objects.get(pk=body["delivery"]).status == "failed"


@pytest.mark.parametrize("status", [500, 400, 429])
def test_a_failed_send_shows_status_latency_and_a_reason_never_the_response_body(api, status):
    body_bytes = b'{"error": "SECRET-BODY db01.corp.internal stack trace"}'
    with Receiver(lambda r: (status, {"Content-Type": "application/json"}, body_bytes)) as receiver:
        channel_id = create(api, name="hook", type="webhook", config={"url": receiver.url, "secret": SECRET}
                            ).json()["id"]
        body = api.post(f"/api/v1/alert-channels/{channel_id}/test").json()
    assert body["delivered"] is False and body["status_code"] == status
    assert body["error"].startswith(f"HTTP {status} ") and "SECRET" not in body["error"]
    assert body["latency_ms"] is not None and body["latency_ms"] >= 0
    notification = Notification.objects.get(pk=body["delivery"])
    assert notification.last_error == body["error"]
    listed = api.get("/api/v1/notifications").json()["results"]
    channel = api.get(f"/api/v1/alert-channels/{channel_id}").json()
    assert "SECRET" not in str(listed) and "SECRET" not in str(channel)


def test_webhook_redirect_is_a_failure(api):
    with Receiver(lambda r: (302, {"Location": "http://169.254.169.254/"}, b"")) as receiver:
        channel_id = create(api, name="hook", type="webhook", config={"url": receiver.url, "secret": SECRET}
                            ).json()["id"]
        body = api.post(f"/api/v1/alert-channels/{channel_id}/test").json()
    assert body["delivered"] is False and body["status_code"] == 302
