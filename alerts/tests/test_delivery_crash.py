"""A sender killed mid-batch (SIGKILL, a real child process): what it stored is never sent again, what it held stays
held until its claims expire, and another sender then delivers the rest exactly once, with the same webhook-ids."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from alerts.models import Notification
from alerts.services.sending import notifications_send
from alerts.tests.factories import AlertChannelFactory, NotificationFactory
from alerts.tests.standins import Receiver

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CLAIM_S = 2
FAST = 10  # answered at once; the requests after them hang until the sender is dead
SENDER = f"""
import django
django.setup()
from django.conf import settings
settings.OUTBOUND_HTTP_ALLOW_LOOPBACK = True
settings.NOTIFICATION_CLAIM_S = {CLAIM_S}
settings.NOTIFICATION_SEND_CONCURRENCY = settings.NOTIFICATION_SEND_PER_HOST = 4
settings.NOTIFICATION_SEND_BATCH, settings.NOTIFICATION_SEND_FLUSH_S = 5, 0.05
from alerts.services.sending import notifications_send
notifications_send()
"""


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


def _until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.django_db(transaction=True)
@override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True, NOTIFICATION_CLAIM_S=CLAIM_S)
def test_a_sender_killed_mid_batch_sends_nothing_twice_but_what_it_had_not_stored():
    if connection.vendor != "postgresql":
        pytest.skip("the child process needs the server database")
    release = threading.Event()

    def answer(request: dict) -> tuple[int, dict, bytes]:
        if len(receiver.requests) > FAST:
            release.wait(30)
        return 202, {}, b""

    with Receiver(answer) as receiver:
        channel = AlertChannelFactory(type="webhook", config={"url": receiver.url + "/hook"}, secret=SECRET)
        ids = {NotificationFactory(organization=channel.organization, channel=channel, kind="trigger",
                                   payload={"summary": f"n{i}"}, next_attempt_at=timezone.now()).id
               for i in range(30)}
        env = {**os.environ, "MQCLOUD_PROFILE": "test", "DJANGO_SETTINGS_MODULE": "controlplane.settings",
               "DATABASE_URL": _database_url()}
        child = subprocess.Popen([sys.executable, "-c", SENDER], cwd=ROOT, env=env)  # noqa: S603 (our own code)
        try:
            # Mid-batch: the first answers stored, four sends hanging, more claimed and waiting for a thread.
            _until(lambda: Notification.objects.filter(status="delivered").count() == FAST
                   and len(receiver.requests) == FAST + 4)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        time.sleep(0.2)  # requests already on the wire are read (none should be)
        first = Counter(r["headers"]["webhook-id"] for r in receiver.requests)
        stored = set(Notification.objects.filter(status="delivered").values_list("id", flat=True))
        held = set(Notification.objects.filter(status="pending", claimed_until__gt=timezone.now())
                   .values_list("id", flat=True))
        in_doubt = set(first) - stored  # sent, outcome never stored
        assert len(stored) == FAST and len(in_doubt) == 4 and in_doubt <= held and len(held) > 4
        assert max(first.values()) == 1
        release.set()

        notifications_send()  # before the claims expire: only what the dead sender had not claimed
        before_expiry = Counter(r["headers"]["webhook-id"] for r in receiver.requests[sum(first.values()):])
        assert set(before_expiry) == ids - stored - held and max(before_expiry.values()) == 1
        time.sleep(CLAIM_S)
        notifications_send()
    second = Counter(r["headers"]["webhook-id"] for r in receiver.requests[sum(first.values()):])
    assert set(second) == ids - stored and max(second.values()) == 1  # the rest, each once
    assert in_doubt <= set(second)  # the only ones a receiver sees twice: same webhook-id, de-duplicated there
    rows = Notification.objects.filter(pk__in=ids).values_list("status", "attempts", "claimed_until")
    assert set(rows) == {("delivered", 1, None)}
