"""Enqueueing Celery tasks from services.

A service that asks a worker to act enqueues only once its transaction commits: a worker that started earlier
would read the rows as they were before the change (or not at all), and a rolled-back request must not leave
work behind. Tasks are named by their registered name, so a service never imports its app's ``tasks`` module
(which imports the services: the cycle issue 12 removed).
"""

from __future__ import annotations

import threading
from typing import Any

from django.db import transaction

from controlplane.celery import app

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
    transaction.on_commit(lambda: enqueue(task_name, *args, **kwargs))
