"""Enqueueing Celery tasks from services.

A service that asks a worker to act enqueues only once its transaction commits: a worker that started earlier
would read the rows as they were before the change (or not at all), and a rolled-back request must not leave
work behind. Tasks are named by their registered name, so a service never imports its app's ``tasks`` module
(which imports the services: the cycle issue 12 removed).

A send that finds the broker unreachable (Redis restarting, a failover) must neither lose the task nor fail a
request whose change is already committed: the task is kept as a ``PendingTask`` row and the beat job
``pending_tasks_send`` sends it once the broker is back.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.db import transaction
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError

from controlplane.celery import app
from controlplane.models import PendingTask

log = logging.getLogger(__name__)

# What a publish raises when the broker cannot be reached (kombu wraps the connection errors once its own
# retries are spent).
BROKER_UNREACHABLE = (OperationalError, RedisConnectionError, ConnectionError)

_import_lock = threading.Lock()


def registered_task(task_name: str) -> Any:
    """The task registered as ``task_name`` on our Celery app. Outside a worker Celery imports the apps'
    ``tasks`` modules only when asked (``autodiscover_tasks`` is lazy), so a web process that has not imported
    one yet asks now. """
    try:
        return app.tasks[task_name]
    except KeyError:
        # One thread at a time: Celery's autodiscovery returns at once, importing nothing, while another thread
        # is in it (its _RACE_PROTECTION), which made parallel first requests of `make run` fail.
        with _import_lock:
            if task_name not in app.tasks:
                app.loader.import_default_modules()
        return app.tasks[task_name]


def enqueue(task_name: str, *args: Any, **kwargs: Any) -> None:
    """Sends ``task_name`` now (``apply_async`` of the registered task, so eager mode applies in tests)."""
    registered_task(task_name).apply_async(args=args, kwargs=kwargs)


def enqueue_on_commit(task_name: str, *args: Any, **kwargs: Any) -> None:
    """Sends ``task_name`` with these arguments when the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: send_or_keep(task_name, *args, **kwargs))


def send_or_keep(task_name: str, *args: Any, **kwargs: Any) -> bool:
    """Sends ``task_name``, or keeps it for ``pending_tasks_send`` when the send fails. True if sent.

    Any failure, not only a refused connection: a Redis that turned read-only after a failover, or ran out of
    memory, answers an error instead, and this runs after the commit, where an exception would fail a request whose
    change is already made and skip the transaction's other on-commit sends."""
    try:
        enqueue(task_name, *args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - see above: kept, logged, and counted at /metrics
        PendingTask.objects.create(task_name=task_name, args=list(args), kwargs=kwargs, error=_describe(exc))
        log.warning("task %s not sent (%s); kept to be sent later", task_name, _describe(exc))
        return False
    return True


def pending_tasks_send(*, batch_size: int = 500) -> int:
    """Sends the tasks kept while the broker could not take them, oldest first, each row deleted in the
    transaction that locked it once sent. Stops at the first send the broker refuses (it is still away); a row
    that fails for another reason (a task renamed since) keeps its error and is passed over, never holding up or
    re-sending the others. Returns how many were sent. Two runs at once take different rows (SKIP LOCKED)."""
    sent, passed_over = 0, 0
    while True:
        failure: Exception | None = None
        with transaction.atomic():
            rows = list(PendingTask.objects.select_for_update(skip_locked=True).order_by("created_at", "pk")
                        [passed_over:passed_over + batch_size])
            done = []
            for row in rows:
                try:
                    enqueue(row.task_name, *row.args, **row.kwargs)
                except BROKER_UNREACHABLE as exc:
                    failure = exc
                    break
                except Exception as exc:  # noqa: BLE001 - this row's own fault: note it, go on with the others
                    PendingTask.objects.filter(pk=row.pk).update(error=_describe(exc))
                    passed_over += 1
                    log.error("kept task %s (%s) cannot be sent: %s", row.pk, row.task_name, _describe(exc))
                    continue
                done.append(row.pk)
            PendingTask.objects.filter(pk__in=done).delete()
        sent += len(done)
        if failure is not None:
            log.warning("broker still unreachable after sending %d kept task(s): %s", sent, failure)
            return sent
        if len(rows) < batch_size:
            return sent


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]
