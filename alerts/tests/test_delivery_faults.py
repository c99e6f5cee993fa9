"""Deliveries against misbehaving targets: a webhook that times out or answers slowly, one that redirects to
a private address, an SMTP server that refuses or is down. Each is retried or failed with a clear reason,
and a slow target never holds up the deliveries to others."""

from __future__ import annotations

import threading
import time

import pytest
from aiosmtpd.controller import Controller
from django.db import connection
from django.test import override_settings

from alerts.models import Notification
from alerts.services.sending import notification_attempt
from alerts.tests.factories import AlertChannelFactory, AlertFactory, NotificationFactory
from alerts.tests.standins import Receiver, free_port

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
LOOPBACK = override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True, NOTIFICATION_TIMEOUT_S=0.5,
                             NOTIFICATION_RETRY_SCHEDULE_S=[5, 300])


def trigger_for(channel) -> Notification:
    alert = AlertFactory(organization=channel.organization)
    return NotificationFactory(organization=channel.organization, channel=channel, alert=alert, kind="trigger",
                               payload={"type": "alert.triggered", "summary": "busy broker",
                                        "alert": {"id": alert.id}})


def slow(seconds: float):
    def answer(request: dict) -> tuple[int, dict, bytes]:
        time.sleep(seconds)
        return 200, {}, b"late"
    return answer


@pytest.mark.django_db
@LOOPBACK
def test_a_webhook_that_times_out_is_retried_later_with_the_reason():
    with Receiver(slow(2.0)) as receiver:
        channel = AlertChannelFactory(type="webhook", config={"url": receiver.url}, secret=SECRET)
        notification = trigger_for(channel)
        started = time.monotonic()
        notification_attempt(notification_id=notification.id)
        elapsed = time.monotonic() - started
    notification.refresh_from_db()
    assert elapsed < 1.5, "the delivery deadline bounds a slow target"
    assert (notification.status, notification.attempts, notification.status_code) == ("pending", 1, None)
    assert "time" in notification.last_error.lower() and notification.next_attempt_at is not None


@pytest.mark.django_db
@LOOPBACK
def test_a_redirect_to_a_private_address_is_a_failure_and_is_not_followed():
    with Receiver(lambda request: (302, {"Location": "http://10.0.0.7/steal"}, b"")) as receiver:
        channel = AlertChannelFactory(type="webhook", config={"url": receiver.url}, secret=SECRET)
        notification = trigger_for(channel)
        notification_attempt(notification_id=notification.id)
    notification.refresh_from_db()
    assert len(receiver.requests) == 1
    assert notification.status_code == 302 and notification.status in ("pending", "failed")
    assert notification.last_error


class RefusingSmtp:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:  # noqa: N802
        return "550 5.1.1 no such mailbox"


@pytest.mark.django_db
def test_an_smtp_server_that_refuses_the_recipients_fails_the_delivery_with_its_reason():
    port = free_port()
    controller = Controller(RefusingSmtp(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with override_settings(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST="127.0.0.1",
                               EMAIL_PORT=port, EMAIL_USE_TLS=False, EMAIL_HOST_USER="", EMAIL_HOST_PASSWORD=""):
            channel = AlertChannelFactory(type="email", config={"recipients": ["nobody@example.com"]})
            notification = trigger_for(channel)
            assert notification_attempt(notification_id=notification.id) is None  # permanent: no retry
    finally:
        controller.stop()
    notification.refresh_from_db()
    assert notification.status == "failed"
    assert "refused" in notification.last_error and "nobody@example.com" in notification.last_error


@pytest.mark.django_db
def test_an_smtp_server_that_is_down_is_retried():
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST="127.0.0.1",
                           EMAIL_PORT=free_port(), EMAIL_TIMEOUT=2, NOTIFICATION_RETRY_SCHEDULE_S=[5, 300]):
        channel = AlertChannelFactory(type="email", config={"recipients": ["ops@example.com"]})
        notification = trigger_for(channel)
        assert notification_attempt(notification_id=notification.id) == 5.0
    notification.refresh_from_db()
    assert notification.status == "pending" and notification.attempts == 1
    assert notification.last_error.startswith("smtp:")


@pytest.mark.django_db(transaction=True)
@LOOPBACK
def test_a_slow_target_does_not_hold_up_deliveries_to_others():
    with Receiver(slow(2.0)) as slow_receiver, Receiver() as fast_receiver:
        slow_channel = AlertChannelFactory(type="webhook", config={"url": slow_receiver.url}, secret=SECRET)
        fast_channel = AlertChannelFactory(type="webhook", config={"url": fast_receiver.url}, secret=SECRET)
        slow_one, fast_one = trigger_for(slow_channel), trigger_for(fast_channel)
        finished: dict[str, float] = {}
        started = time.monotonic()

        def deliver(notification: Notification) -> None:
            try:
                notification_attempt(notification_id=notification.id)
                finished[notification.id] = time.monotonic() - started
            finally:
                connection.close()

        workers = [threading.Thread(target=deliver, args=(n,)) for n in (slow_one, fast_one)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(10)
    assert Notification.objects.get(pk=fast_one.pk).status == "delivered"
    assert Notification.objects.get(pk=slow_one.pk).status == "pending"
    assert finished[fast_one.id] < 0.4 < finished[slow_one.id]
