"""One attempt at a time per notification without a row lock held across the send: the claim
(``Notification.claimed_until``), against a real receiver and, where another worker matters, real concurrent
database connections."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.test import override_settings
from django.utils import timezone

from alerts.models import Notification
from alerts.services.notifications import notifications_redrive
from alerts.services.sending import notification_attempt
from alerts.tests.factories import AlertChannelFactory, NotificationFactory
from alerts.tests.standins import Receiver, verify_standard_webhook

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _pending(receiver: Receiver, **fields) -> Notification:
    channel = AlertChannelFactory(type="webhook", config={"url": receiver.url + "/hook"}, secret=SECRET)
    return NotificationFactory(organization=channel.organization, channel=channel, kind="trigger",
                               payload={"type": "alert.firing", "summary": "busy"}, **fields)


@pytest.mark.django_db
@override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True)
def test_a_notification_claimed_by_another_worker_is_not_sent():
    with Receiver() as receiver:
        notification = _pending(receiver, claimed_until=timezone.now() + timedelta(seconds=60))
        assert notification_attempt(notification_id=notification.id) is None
    assert receiver.requests == []
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("pending", 0)


@pytest.mark.django_db
@override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True)
def test_an_expired_claim_is_taken_over_and_released_with_the_outcome():
    with Receiver() as receiver:
        notification = _pending(receiver, claimed_until=timezone.now() - timedelta(seconds=1))  # a worker died
        assert notification_attempt(notification_id=notification.id) is None
        assert notification_attempt(notification_id=notification.id) is None  # a duplicate task: no second send
    assert len(receiver.requests) == 1
    assert verify_standard_webhook(receiver.requests[0], SECRET)["summary"] == "busy"
    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.claimed_until) == ("delivered", 1, None)


@pytest.mark.django_db
@override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True, NOTIFICATION_RETRY_SCHEDULE_S=[5])
def test_a_transient_failure_releases_the_claim_for_the_retry():
    answers = [(503, {}, b"busy"), (202, {}, b"")]
    with Receiver(lambda request: answers.pop(0)) as receiver:
        notification = _pending(receiver)
        assert notification_attempt(notification_id=notification.id) == 5.0
        notification.refresh_from_db()
        assert (notification.status, notification.attempts, notification.claimed_until) == ("pending", 1, None)
        assert notification_attempt(notification_id=notification.id) is None
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("delivered", 2)


@pytest.mark.django_db(transaction=True)
@override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True)
def test_no_row_lock_is_held_during_the_send_and_a_concurrent_attempt_sends_nothing():
    seen: list[tuple] = []

    def responder(request):
        # Runs while the attempt waits for our answer, on the receiver's thread: its own database connection.
        try:
            with transaction.atomic():
                row = (Notification.objects.select_for_update(nowait=True)  # raises if the row were locked
                       .values_list("status", "claimed_until").get(pk=request["headers"]["webhook-id"]))
            seen.append(row)
            seen.append(notification_attempt(notification_id=request["headers"]["webhook-id"]))
        finally:
            connections.close_all()
        return 202, {}, b""

    with Receiver(responder) as receiver:
        notification = _pending(receiver)
        assert notification_attempt(notification_id=notification.id) is None
    (status, claimed_until), concurrent = seen
    assert status == "pending" and claimed_until > timezone.now()
    assert concurrent is None and len(receiver.requests) == 1  # the duplicate found it claimed
    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.claimed_until) == ("delivered", 1, None)
    assert not connection.in_atomic_block


@pytest.mark.django_db(transaction=True)
@override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True)
def test_an_attempt_whose_claim_was_taken_over_does_not_store_its_outcome():
    def responder(request):
        # Our claim expired and another worker claimed the notification while this send was still going on.
        try:
            Notification.objects.filter(pk=request["headers"]["webhook-id"]).update(
                claimed_until=timezone.now() + timedelta(minutes=5))
        finally:
            connections.close_all()
        return 202, {}, b""

    with Receiver(responder) as receiver:
        notification = _pending(receiver)
        assert notification_attempt(notification_id=notification.id) is None
    assert len(receiver.requests) == 1
    notification.refresh_from_db()
    # The other worker's attempt is the one of record: this one leaves the row as that worker holds it.
    assert (notification.status, notification.attempts) == ("pending", 0) and notification.claimed_until


@pytest.mark.django_db
@override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True)
def test_the_redrive_leaves_an_attempt_in_progress_and_takes_one_whose_worker_died(django_capture_on_commit_callbacks):
    with Receiver() as receiver:
        now = timezone.now()
        long_ago = now - timedelta(hours=1)
        in_progress = _pending(receiver, next_attempt_at=long_ago, claimed_until=now + timedelta(seconds=60))
        abandoned = _pending(receiver, next_attempt_at=long_ago, claimed_until=now - timedelta(seconds=1))
        with django_capture_on_commit_callbacks() as callbacks:
            assert notifications_redrive(now=now) == 1
        assert len(callbacks) == 1
        assert Notification.objects.get(pk=in_progress.pk).next_attempt_at == long_ago
        assert notification_attempt(notification_id=abandoned.id) is None
    assert [r["headers"]["webhook-id"] for r in receiver.requests] == [abandoned.id]
    assert Notification.objects.get(pk=abandoned.pk).status == "delivered"


@pytest.mark.django_db
@override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True)
def test_a_disabled_channel_fails_the_notification_unsent_and_releases_the_claim():
    with Receiver() as receiver:
        notification = _pending(receiver)
        notification.channel.enabled, notification.channel.disabled_reason = False, "gone for good"
        notification.channel.save()
        assert notification_attempt(notification_id=notification.id) is None
    assert receiver.requests == []
    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.claimed_until) == ("failed", 0, None)
    assert notification.last_error == "channel disabled: gone for good"
