"""Task failures recorded from Celery's signal (bounded), retried by name with their arguments; heartbeats of
periodic jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from celery import shared_task

from controlplane import errors, selectors, task_records
from controlplane.celery import app as celery_app
from controlplane.models import TaskFailure, TaskHeartbeat

pytestmark = pytest.mark.django_db

CALLS: list[tuple] = []


@shared_task(name="controlplane.tests.flaky")
def flaky(item_id: str, *, attempt: int = 1) -> str:
    CALLS.append((item_id, attempt))
    if attempt == 1:
        raise ValueError(f"item {item_id} is not ready")
    return "done"


@pytest.fixture
def eager():
    celery_app.conf.task_always_eager = True
    CALLS.clear()
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = False


def test_a_failed_task_is_recorded_by_the_signal_with_its_name_and_arguments(eager):
    result = flaky.apply(args=("dep_1",), kwargs={"attempt": 1})
    assert result.failed()
    failure = TaskFailure.objects.get()
    assert failure.task_name == "controlplane.tests.flaky"
    assert failure.args == ["dep_1"] and failure.kwargs == {"attempt": 1}
    assert failure.exception_type == "builtins.ValueError" and failure.message == "item dep_1 is not ready"
    assert "ValueError" in failure.traceback
    assert failure.task_id == result.id


def test_a_successful_task_records_nothing(eager):
    flaky.apply(args=("dep_1",), kwargs={"attempt": 2})
    assert not TaskFailure.objects.exists()


def test_retry_enqueues_the_task_by_name_with_the_same_arguments(eager, django_capture_on_commit_callbacks):
    flaky.apply(args=("dep_1",), kwargs={"attempt": 1})
    failure = TaskFailure.objects.get()
    failure.kwargs = {"attempt": 2}  # the cause was fixed: this time it succeeds
    failure.save()
    CALLS.clear()
    with django_capture_on_commit_callbacks(execute=True):
        retried = task_records.task_failure_retry(failure_id=failure.pk, actor_label="ops@example.com")
    assert CALLS == [("dep_1", 2)]
    assert retried.retried_by == "ops@example.com" and retried.retried_at is not None
    assert TaskFailure.objects.count() == 1  # the retry succeeded: no new failure


def test_retrying_an_unknown_task_is_refused():
    failure = TaskFailure.objects.create(task_name="gone.tasks.removed", exception_type="ValueError")
    with pytest.raises(errors.Conflict):
        task_records.task_failure_retry(failure_id=failure.pk, actor_label="ops@example.com")
    failure.refresh_from_db()
    assert failure.retried_at is None
    with pytest.raises(errors.NotFound):
        task_records.task_failure_retry(failure_id=failure.pk + 1000, actor_label="ops@example.com")


def test_failures_are_pruned_by_age_and_by_count(monkeypatch):
    start = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        task_records.task_failure_record(task_name="a", task_id="1", args=[], kwargs={}, exception=ValueError("x"))
    with time_machine.travel(start + timedelta(days=8), tick=False):
        task_records.task_failure_record(task_name="b", task_id="2", args=[], kwargs={}, exception=ValueError("y"))
        assert list(TaskFailure.objects.values_list("task_name", flat=True)) == ["b"]
    monkeypatch.setattr(task_records, "TASK_FAILURES_KEPT", 3)
    for minute in range(5):
        with time_machine.travel(start + timedelta(days=8, minutes=minute + 1), tick=False):
            task_records.task_failure_record(task_name=f"c{minute}", task_id="", args=[object()], kwargs={},
                                             exception=RuntimeError("z"))
    assert list(TaskFailure.objects.order_by("-failed_at").values_list("task_name", flat=True)) == ["c4", "c3", "c2"]
    assert TaskFailure.objects.filter(task_name="c4").get().args[0].startswith("<object object")


def test_recent_failures_are_the_last_hour_newest_first():
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    for minutes, name in ((90, "old"), (50, "older"), (5, "newest"), (20, "middle")):
        TaskFailure.objects.create(task_name=name, exception_type="E", failed_at=now - timedelta(minutes=minutes))
    recent = selectors.task_failures_since(since=now - timedelta(hours=1))
    assert [f.task_name for f in recent] == ["newest", "middle", "older"]


def test_periodic_tasks_leave_a_heartbeat_others_do_not(eager):
    at = datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC)
    with time_machine.travel(at, tick=False):
        task_records.on_task_success(sender=celery_app.tasks["controlplane.tasks.rate_counters_purge"])
        flaky.apply(args=("dep_1",), kwargs={"attempt": 2})
    assert selectors.task_heartbeat_at(task_name="controlplane.tasks.rate_counters_purge") == at
    assert list(TaskHeartbeat.objects.values_list("task_name", flat=True)) == ["controlplane.tasks.rate_counters_purge"]
