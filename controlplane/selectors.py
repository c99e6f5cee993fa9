"""Reads of the control plane's own records (what the workers left for operators). System reads: staff only."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, Min, QuerySet

from controlplane.models import PendingTask, TaskFailure, TaskHeartbeat


def task_failures_since(*, since: datetime) -> QuerySet[TaskFailure]:
    """Tasks that failed for good since ``since``, the newest first."""
    return TaskFailure.objects.filter(failed_at__gte=since).order_by("-failed_at", "-id")


def task_failure_counts_since(*, since: datetime) -> dict[str, int]:
    """How many tasks failed for good since ``since``, by task name."""
    return dict(TaskFailure.objects.filter(failed_at__gte=since).values_list("task_name").annotate(n=Count("id"))
                .order_by())


def task_heartbeat_at(*, task_name: str) -> datetime | None:
    """When the periodic task ``task_name`` last finished without an error (None: not since records began)."""
    return TaskHeartbeat.objects.filter(task_name=task_name).values_list("last_succeeded_at", flat=True).first()


def task_heartbeats() -> dict[str, datetime]:
    """When each periodic task last finished without an error, by task name."""
    return dict(TaskHeartbeat.objects.values_list("task_name", "last_succeeded_at"))


def pending_tasks_summary() -> tuple[int, datetime | None]:
    """How many tasks wait for the broker (``controlplane.queue.send_or_keep``), and since when the oldest."""
    summary = PendingTask.objects.aggregate(count=Count("pk"), oldest=Min("created_at"))
    return summary["count"], summary["oldest"]
