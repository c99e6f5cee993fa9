"""What the benchmarks' smoke tests (``tests/test_bench_*.py``) share: the environment their scripts run in.

Each script makes its own throwaway database (``bench/harness.py``); migrating one takes ~20 s on a loaded
machine, more than anything the smoke tests run in it. So the suite keeps a copy of its own database, taken right
after pytest-django migrated it (nothing written yet, nobody else connected), and the scripts copy that instead of
migrating (``BENCH_DATABASE_TEMPLATE``). ``make bench`` does not set it: the benches still migrate their own.
"""

from __future__ import annotations

import os
import warnings

import pytest
from django.db import DatabaseError

TEMPLATE_SUFFIX = "_bench_template"
_template: list[str] = []  # its name, once made


def make_template(request: pytest.FixtureRequest, django_db_blocker) -> None:
    """Copies the freshly migrated test database into the template, dropped again when the session ends, if the
    session runs a smoke test that uses it (one with ``bench_env``) and the database is one to copy: PostgreSQL,
    migrated (not with ``--nomigrations``: the scripts then migrate their own, as ``make bench`` does). Called
    by the root conftest's ``django_db_setup`` before any test wrote to the database."""
    from django.db import connection

    if connection.vendor != "postgresql" or request.config.getoption("nomigrations", False) or not any(
            "bench_env" in getattr(item, "fixturenames", ()) for item in request.session.items):
        return
    quote = connection.ops.quote_name
    template = connection.settings_dict["NAME"] + TEMPLATE_SUFFIX
    connection.close()  # PostgreSQL copies a database only while no session is connected to it, ours included
    try:
        with connection._nodb_cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {quote(template)}")
            cursor.execute(f"CREATE DATABASE {quote(template)} TEMPLATE {quote(connection.settings_dict['NAME'])}")
    except DatabaseError as error:  # another session on it (a --reuse-db database still in use, say): slower only
        warnings.warn(f"the bench smoke tests will migrate their own databases: {error}", stacklevel=1)
        return
    _template.append(template)

    def drop() -> None:
        _template.remove(template)
        with django_db_blocker.unblock(), connection._nodb_cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {quote(template)}")

    request.addfinalizer(drop)


@pytest.fixture
def bench_env(db) -> dict[str, str]:
    """The environment of a bench script run by a smoke test: the test profile, and the template to copy if the
    suite made one. Through ``db``: pytest-django sets the test database up only for a session with a test that
    asks for one (a session of smoke tests alone did not, and the template had nothing to copy)."""
    return {**os.environ, "MQCLOUD_PROFILE": "test", **({"BENCH_DATABASE_TEMPLATE": _template[0]} if _template else {})}
