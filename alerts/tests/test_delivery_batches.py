"""The batch sender (``notifications_send``) against real receivers: a slow receiver holds at most its per-host share
of the threads while the others' deliveries go on, and PagerDuty's per-key rate holds across a batch."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from alerts.models import Notification
from alerts.services.sending import notifications_send
from alerts.tests.factories import AlertChannelFactory, NotificationFactory
from alerts.tests.standins import Receiver

pytestmark = pytest.mark.django_db
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SLOW_S = 0.6


def _pending(channel, count: int, *, due_ago_s: float = 0.0) -> list[str]:
    due = timezone.now() - timedelta(seconds=due_ago_s)
    return [NotificationFactory(organization=channel.organization, channel=channel, kind="trigger",
                                payload={"summary": "busy"}, next_attempt_at=due).id for _ in range(count)]


@override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True, NOTIFICATION_SEND_CONCURRENCY=4, NOTIFICATION_SEND_PER_HOST=2,
                   NOTIFICATION_SEND_SLOW_S=0.2, NOTIFICATION_SEND_FLUSH_S=0.05, NOTIFICATION_TIMEOUT_S=3)
def test_a_slow_receiver_holds_its_share_of_the_threads_and_the_rest_goes_on():
    lock, now_open, most_open, fast_times = threading.Lock(), [0], [0], []

    def slowly(request: dict) -> tuple[int, dict, bytes]:
        with lock:
            now_open[0] += 1
            most_open[0] = max(most_open[0], now_open[0])
        time.sleep(SLOW_S)
        with lock:
            now_open[0] -= 1
        return 202, {}, b""

    def at_once(request: dict) -> tuple[int, dict, bytes]:
        fast_times.append(time.monotonic())
        return 202, {}, b""

    with Receiver(slowly) as slow, Receiver(at_once) as fast:
        slow_ids = _pending(AlertChannelFactory(type="webhook", config={"url": slow.url}, secret=SECRET), 12,
                            due_ago_s=60)  # due first: the first claim is all theirs
        fast_ids = _pending(AlertChannelFactory(type="webhook", config={"url": fast.url}, secret=SECRET), 20)
        started = time.monotonic()
        stats = notifications_send()
    assert most_open[0] == 2  # the per-host limit
    assert len(fast_times) == 20 and max(fast_times) - started < SLOW_S  # all before the slow one's first answer
    assert set(Notification.objects.filter(pk__in=fast_ids).values_list("status", "attempts")) == {("delivered", 1)}
    # One claim takes all 32 (a batch). The slow receiver's first pair is sent at once; once it is known to be slow
    # only the next pair stays claimed to follow it, and the other eight go back unsent, due when a slot would be
    # free (kept, they would wait behind it, holding their claims).
    slow_rows = Notification.objects.filter(pk__in=slow_ids)
    assert stats["claims"] >= 1 and stats["claimed"] == 32
    assert slow_rows.filter(status="delivered", attempts=1).count() == len(slow.requests) == 4
    deferred = slow_rows.filter(status="pending")
    assert deferred.count() == 8 and set(deferred.values_list("attempts", "claimed_until")) == {(0, None)}
    assert all(n.next_attempt_at > timezone.now() for n in deferred)
    assert stats["deferred"] == 8 and stats["delivered"] == 24


@override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True, PAGERDUTY_EVENTS_PER_MINUTE=3)
def test_pagerduty_per_key_rate_holds_across_a_batch():
    with Receiver() as pagerduty, override_settings(PAGERDUTY_EVENTS_URL=pagerduty.url + "/v2/enqueue"):
        channel = AlertChannelFactory(type="pagerduty", config={}, secret="R0123456789abcdef0123456789ABCDE")
        ids = _pending(channel, 5)
        for notification_id in ids:  # every trigger needs its incident's id for the dedup key
            Notification.objects.filter(pk=notification_id).update(payload={"summary": "busy",
                                                                              "alert": {"id": notification_id}})
        notifications_send()
    assert len(pagerduty.requests) == 3
    rows = Notification.objects.filter(pk__in=ids)
    assert rows.filter(status="delivered").count() == 3
    waiting = rows.filter(status="pending", attempts=0, claimed_until__isnull=True)
    assert waiting.count() == 2 and all(n.next_attempt_at > timezone.now() for n in waiting)
