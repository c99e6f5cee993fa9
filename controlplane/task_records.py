"""What the workers leave behind for operators: tasks that failed for good, and when each periodic job last ran.

Celery's ``task_failure`` and ``task_success`` signals call the handlers here (connected in
``ControlplaneConfig.ready``, so every worker has them). A handler never raises: a failure to record a failure
must not hide the original one in the worker's log.
"""

from __future__ import annotations

import json
import logging
import traceback as traceback_module
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from controlplane import errors
from controlplane.models import TaskFailure, TaskHeartbeat
from controlplane.queue import enqueue_on_commit, registered_task

logger = logging.getLogger(__name__)

TASK_FAILURE_RETENTION = timedelta(days=7)
TASK_FAILURES_KEPT = 1000
_TRACEBACK_CHARS = 8000


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)[:500]
    return value


def task_failure_record(*, task_name: str, task_id: str, args: Any, kwargs: Any, exception: BaseException,
                        traceback_text: str = "", now: datetime | None = None) -> TaskFailure:
    """Records one failed task and prunes what is past the retention or the row cap."""
    now = now or timezone.now()
    failure = TaskFailure.objects.create(
        task_name=task_name[:200], task_id=(task_id or "")[:64],
        args=[_jsonable(arg) for arg in (args or ())], kwargs={str(k): _jsonable(v) for k, v in (kwargs or {}).items()},
        exception_type=f"{type(exception).__module__}.{type(exception).__qualname__}"[:200],
        message=str(exception)[:1000], traceback=traceback_text[-_TRACEBACK_CHARS:], failed_at=now)
    TaskFailure.objects.filter(failed_at__lt=now - TASK_FAILURE_RETENTION).delete()
    keep_after = TaskFailure.objects.order_by("-failed_at", "-id").values_list("failed_at", flat=True)[
        TASK_FAILURES_KEPT:TASK_FAILURES_KEPT + 1].first()
    if keep_after is not None:
        TaskFailure.objects.filter(failed_at__lte=keep_after).delete()
    return failure


def task_failure_retry(*, failure_id: int, actor_label: str, now: datetime | None = None) -> TaskFailure:
    """Enqueues the failed task again by its registered name with the same arguments (after commit), and records
    who retried it when. The caller audits it (the audit log is the platform layer's, above this one)."""
    with transaction.atomic():
        failure = TaskFailure.objects.select_for_update().filter(pk=failure_id).first()
        if failure is None:
            raise errors.NotFound(f"No task failure {failure_id}.")
        try:
            registered_task(failure.task_name)
        except KeyError as exc:
            raise errors.Conflict(f"No task is registered as {failure.task_name}; it cannot be retried.") from exc
        failure.retried_at = now or timezone.now()
        failure.retried_by = actor_label[:254]
        failure.save(update_fields=["retried_at", "retried_by"])
        enqueue_on_commit(failure.task_name, *failure.args, **failure.kwargs)
    return failure


def task_heartbeat_record(*, task_name: str, now: datetime | None = None) -> None:
    TaskHeartbeat.objects.update_or_create(task_name=task_name, defaults={"last_succeeded_at": now or timezone.now()})


def periodic_task_names() -> frozenset[str]:
    return frozenset(entry["task"] for entry in getattr(settings, "CELERY_BEAT_SCHEDULE", {}).values())


# --- Celery signal handlers ------------------------------------------------------------------------------------
def on_task_failure(sender: Any = None, task_id: str = "", exception: BaseException | None = None,
                    args: Any = None, kwargs: Any = None, einfo: Any = None, **_: Any) -> None:
    try:
        text = str(einfo) if einfo is not None else "".join(traceback_module.format_exception(exception))
        task_failure_record(task_name=getattr(sender, "name", "") or "unknown", task_id=task_id or "", args=args,
                            kwargs=kwargs, exception=exception or RuntimeError("unknown"), traceback_text=text)
    except Exception:  # never let the record hide the failure itself
        logger.exception("could not record the failure of task %s", task_id)


def on_task_success(sender: Any = None, **_: Any) -> None:
    name = getattr(sender, "name", "")
    if name not in periodic_task_names():
        return
    try:
        task_heartbeat_record(task_name=name)
    except Exception:
        logger.exception("could not record the heartbeat of %s", name)
