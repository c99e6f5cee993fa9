"""What every benchmark shares: Django on the test profile, a throwaway database, a timer."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
os.environ.setdefault("MQCLOUD_PROFILE", "test")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment, teardown_test_environment  # noqa: E402


@contextmanager
def benchmark_database(name: str) -> Iterator[None]:
    """A fresh database (its own name, so a benchmark never clobbers the test suite's) with the catalog."""
    setup_test_environment()
    settings.API_RATE_LIMITS = {"credential": "", "ip": "", "signup": ""}
    # Persistent connections, as in production; otherwise every request pays for a new PostgreSQL login.
    connection.settings_dict["CONN_MAX_AGE"] = 60
    connection.settings_dict.setdefault("TEST", {})["NAME"] = name
    template = os.environ.get("BENCH_DATABASE_TEMPLATE")
    old_name = (_copy_of(template, name) if template
                else connection.creation.create_test_db(verbosity=0, autoclobber=True))
    try:
        from deployments.services import catalog_sync

        catalog_sync()
        yield
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()


def _copy_of(template: str, name: str) -> str:
    """Makes ``name`` a copy of ``template`` (an already migrated database nobody is connected to) and connects
    to it instead of migrating a new one; returns the old name, as ``create_test_db`` does. For the smoke tests
    (``tests/bench_support.py``): migrating takes ~20 s on a loaded machine, a copy well under one."""
    quote = connection.ops.quote_name
    with connection._nodb_cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {quote(name)}")
        cursor.execute(f"CREATE DATABASE {quote(name)} TEMPLATE {quote(template)}")
    old_name = connection.settings_dict["NAME"]
    connection.close()
    settings.DATABASES[connection.alias]["NAME"] = connection.settings_dict["NAME"] = name
    return old_name


def median_seconds(label: str, call: Callable[[], object], rounds: int, warmup: int = 10) -> float:
    # The smoke tests cap both (``BENCH_MAX_ROUNDS``): they check that a bench runs, not what it measures.
    cap = int(os.environ.get("BENCH_MAX_ROUNDS", "0")) or max(rounds, warmup)
    rounds, warmup = min(rounds, cap), min(warmup, cap)
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    median = statistics.median(samples)
    print(f"  {label:<56} median {median * 1000:8.3f} ms")
    return median
