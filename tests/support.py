"""Helpers the test suites of several apps share (fixtures live in the root conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from controlplane.celery import app as celery_app


@contextmanager
def eager_tasks(*, propagate: bool = True) -> Iterator[None]:
    """Runs Celery tasks in-process while inside. ``propagate=False`` lets an eager task's ``retry`` run at
    once instead of raising ``Retry`` into the test."""
    before = celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = True, propagate
    try:
        yield
    finally:
        celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = before
