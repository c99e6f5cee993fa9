"""A task asked for by a committed change while the broker cannot be reached is kept, not lost, and the request
that asked does not fail; `pending_tasks_send` sends what was kept once the broker is back. Real Redis: the
broker is made unreachable by pointing the app at a loopback port nobody listens on."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator

import pytest
import redis
from django.conf import settings
from django.db import transaction

from controlplane import queue
from controlplane.celery import app as celery_app
from controlplane.models import PendingTask
from controlplane.queues import HOUSEKEEPING

pytestmark = pytest.mark.django_db(transaction=True)

TASK = "controlplane.tasks.rate_counters_purge"  # routed to the housekeeping queue; nothing consumes it in tests


def _reset_connections() -> None:
    # The app keeps the pools of the broker URL it first used; kombu keeps every URL's pools open, keyed by URL,
    # so forgetting them here makes the next send look its URL up again (and the old pools are there on restore).
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@contextlib.contextmanager
def broker_unreachable() -> Iterator[None]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]  # closed again before use: nothing listens there
    before = celery_app.conf.broker_url
    celery_app.conf.broker_url = f"redis://127.0.0.1:{dead_port}/0"
    _reset_connections()
    try:
        yield
    finally:
        celery_app.conf.broker_url = before
        _reset_connections()


@pytest.fixture
def housekeeping() -> Iterator[redis.Redis]:
    """The broker's housekeeping list; the messages these tests put there are taken back afterwards."""
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    yield broker
    for raw in broker.lrange(HOUSEKEEPING, 0, -1):
        if json.loads(raw)["headers"]["task"] == TASK:
            broker.lrem(HOUSEKEEPING, 1, raw)
    broker.close()


def _ours(broker: redis.Redis) -> int:
    return sum(json.loads(raw)["headers"]["task"] == TASK for raw in broker.lrange(HOUSEKEEPING, 0, -1))


def test_a_send_on_commit_with_the_broker_away_is_kept_and_the_commit_stands():
    assert not celery_app.conf.task_always_eager
    with broker_unreachable():
        with transaction.atomic():
            queue.enqueue_on_commit("billing.tasks.vat_number_check", "acc_x", force=True)
        # on_commit ran after the commit: no exception reached the caller, the task is kept.
    (kept,) = PendingTask.objects.all()
    assert (kept.task_name, kept.args, kept.kwargs) == ("billing.tasks.vat_number_check", ["acc_x"], {"force": True})
    assert kept.error


def test_kept_tasks_are_sent_once_the_broker_is_back_and_the_rows_go(housekeeping):
    PendingTask.objects.bulk_create(PendingTask(task_name=TASK, args=[], kwargs={}) for _ in range(5))
    with broker_unreachable():
        assert queue.pending_tasks_send(batch_size=2) == 0
    assert PendingTask.objects.count() == 5

    assert queue.pending_tasks_send(batch_size=2) == 5  # three batches
    assert PendingTask.objects.count() == 0
    assert _ours(housekeeping) == 5
    assert queue.pending_tasks_send() == 0  # nothing left: a rerun sends nothing


def test_the_beat_job_that_sends_them_is_scheduled_and_routed():
    entry = settings.CELERY_BEAT_SCHEDULE["pending-tasks-send"]
    assert entry["task"] == "controlplane.tasks.pending_tasks_send"
    assert celery_app.amqp.router.route({}, entry["task"])["queue"].name == HOUSEKEEPING


def test_any_failed_send_after_the_commit_is_kept_and_the_other_sends_still_happen(housekeeping):
    """Not only a refused connection: whatever the send raises (here a task no worker knows) after the commit is
    kept with its error, and the transaction's other on-commit sends still go."""
    with transaction.atomic():
        queue.enqueue_on_commit("tests.pending.renamed_since")
        queue.enqueue_on_commit(TASK)
    (kept,) = PendingTask.objects.all()
    assert kept.task_name == "tests.pending.renamed_since" and "NotRegistered" in kept.error
    assert _ours(housekeeping) == 1


def test_a_kept_task_that_cannot_be_sent_is_passed_over_without_resending_the_others(housekeeping):
    PendingTask.objects.create(task_name=TASK)
    PendingTask.objects.create(task_name="tests.pending.renamed_since")
    PendingTask.objects.create(task_name=TASK)
    assert queue.pending_tasks_send(batch_size=2) == 2
    assert queue.pending_tasks_send(batch_size=2) == 0  # the bad row again, nothing else
    (left,) = PendingTask.objects.all()
    assert left.task_name == "tests.pending.renamed_since" and "NotRegistered" in left.error
    assert _ours(housekeeping) == 2
