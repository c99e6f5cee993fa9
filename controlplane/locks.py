"""A short-lived exclusive lock in the shared cache (Redis in production), for workers.

Used to keep two workers from driving the same object at once; the holder schedules its own follow-up,
so a worker that finds the lock taken simply leaves. The timeout frees the lock of a worker that died.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.cache import cache


@contextmanager
def exclusive(name: str, *, timeout: int = 120) -> Iterator[bool]:
    """Yields whether the lock was acquired; releases it on exit if it was."""
    key = f"lock:{name}"
    acquired = cache.add(key, "1", timeout=timeout)
    try:
        yield acquired
    finally:
        if acquired:
            cache.delete(key)
