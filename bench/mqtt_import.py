#!/usr/bin/env python
"""Importing a deployment's MQTT users, against a bare ``COPY`` of the same rows into the same table measured in
the same run.

1. Pre-hashed rows (the realistic bulk path: users moved from another system with their PBKDF2-SHA256 hashes),
   100,000 by default (the API's limit per import): ``mqtt_users_import`` (validation, Unicode username keys,
   duplicate check against the table, bulk insert, generation bump, audit) into an empty deployment.
2. Plain-password rows, 2,000 by default: the same service, which hashes every password (PBKDF2, 4,096
   rounds: that dominates, so this run is small).

The baseline of each is one ``COPY deployments_mqttuser FROM STDIN`` (psycopg 3) of the rows the service writes
(ids, keys, hashes made beforehand, outside the timing) into the same empty deployment: what PostgreSQL needs to
take them at all. COPY and import alternate for ``--rounds`` rounds (the table truncated between them), so drift
hits both; the medians are compared.
The hashes of the pre-hashed rows are random hex of the right shape (the service cannot tell; nobody logs in).
Printed: users per second of each, the ratio, the SQL queries the import issued and, from one more import of
the same rows under ``tracemalloc``, the import's peak memory above what the caller already held. For the
pre-hashed rows also: the peak memory of the whole request, body included, as JSON (read whole and parsed, as
DRF does) against the same users as a streamed ``text/csv`` body, and the streamed import's users per second.

Usage: ``bench/mqtt_import.py [--users N] [--plain N]``; ``tests/test_bench_mqtt.py`` runs it on a few rows.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager

from harness import benchmark_database

COLUMNS = ("id", "deployment_id", "username", "username_key", "algorithm", "password_hash", "salt",
           "is_superuser", "created_at", "updated_at")


def prehashed_rows(count: int) -> list[dict]:
    return [{"username": f"Device-{i:06d}", "algorithm": "pbkdf2_sha256",
             "password_hash": hashlib.sha256(b"%d" % i).hexdigest(), "salt": f"salt{i:08d}",
             "is_superuser": i % 1000 == 0} for i in range(count)]


def plain_rows(count: int) -> list[dict]:
    return [{"username": f"Sensor-{i:06d}", "password": f"password-{i:06d}"} for i in range(count)]


@contextmanager
def counted_queries() -> Iterator[list[int]]:
    """The number of SQL statements run inside (a wrapper, not CaptureQueriesContext: it keeps no SQL text,
    which for 100,000 rows would be most of the memory measured)."""
    from django.db import connection

    count = [0]

    def wrapper(execute, sql, params, many, context):
        count[0] += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield count


def copy_rows(deployment, users: list[dict]) -> tuple[float, float]:
    """Seconds to COPY ``users`` (as the service stores them, made beforehand) into ``deployment``, and seconds
    spent making the rows (the PBKDF2 hashing of plain passwords, mostly)."""
    from django.db import connection, transaction
    from django.utils import timezone

    from controlplane.ids import new_id
    from deployments.models import MqttUser
    from deployments.mqtt_access import hashing
    from deployments.mqtt_access.validation import username_key

    now, started = timezone.now(), time.perf_counter()
    rows = []
    for user in users:
        stored = (hashing.PasswordHash(user["algorithm"], user["password_hash"], user["salt"])
                  if "password_hash" in user else hashing.hash_password(user["password"]))
        rows.append((new_id("mqu"), deployment.pk, user["username"], username_key(user["username"]),
                     stored.algorithm, stored.password_hash, stored.salt, user.get("is_superuser", False), now, now))
    prepared = time.perf_counter() - started
    statement = f"COPY {MqttUser._meta.db_table} ({', '.join(COLUMNS)}) FROM STDIN"
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
    elapsed = time.perf_counter() - started
    assert MqttUser.objects.filter(deployment=deployment).count() == len(users)
    return elapsed, prepared


def imported(principal, deployment, users: list[dict]) -> tuple[float, int]:
    """(seconds, SQL queries) of one ``mqtt_users_import`` of ``users`` into ``deployment``."""
    from deployments.mqtt_access.imports import mqtt_users_import

    with counted_queries() as queries:
        started = time.perf_counter()
        result = mqtt_users_import(principal=principal, deployment=deployment, users=users)
        elapsed = time.perf_counter() - started
    assert result.created == len(users) and not result.errors, result.as_dict()
    return elapsed, queries[0]


def peak_memory(principal, deployment, users: list[dict]) -> int:
    from deployments.mqtt_access.imports import mqtt_users_import

    tracemalloc.start()
    try:
        mqtt_users_import(principal=principal, deployment=deployment, users=users)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def request_memory(principal, deployment, users: list[dict], workdir: str) -> tuple[int, int, float]:
    """Peak memory (tracemalloc) of importing ``users`` as an API request would, from its body on disk: the JSON
    body read whole and parsed (what DRF does) then imported, against the same users as a ``text/csv`` body
    streamed through ``csv_lines_from_bytes``; and the seconds the streamed import took."""
    from deployments.mqtt_access.imports import csv_lines_from_bytes, mqtt_users_import

    json_path, csv_path = os.path.join(workdir, "users.json"), os.path.join(workdir, "users.csv")
    with open(json_path, "w") as out:
        json.dump({"users": users}, out)
    with open(csv_path, "w", newline="") as out:
        writer = csv.writer(out)
        for user in users:
            writer.writerow([user["username"], user["password_hash"], user["salt"], user["algorithm"]])
    tracemalloc.start()
    try:
        with open(json_path, "rb") as body:
            mqtt_users_import(principal=principal, deployment=deployment, users=json.loads(body.read())["users"])
        json_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    empty_table()
    tracemalloc.start()
    try:
        with open(csv_path, "rb") as body:
            mqtt_users_import(principal=principal, deployment=deployment, users=csv_lines_from_bytes(body))
        csv_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    empty_table()
    started = time.perf_counter()
    with open(csv_path, "rb") as body:
        result = mqtt_users_import(principal=principal, deployment=deployment, users=csv_lines_from_bytes(body))
    elapsed = time.perf_counter() - started
    assert result.created == len(users) and not result.errors_total, result.as_dict()
    empty_table()
    return json_peak, csv_peak, elapsed


def empty_table() -> None:
    """Deletes every user (this database holds only the benchmark's): TRUNCATE, not DELETE, so each round
    starts from an empty table and indexes, not from the dead rows of the last one."""
    from django.db import connection

    from deployments.models import MqttUser

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {MqttUser._meta.db_table}")


def compare(label: str, principal, deployment, users: list[dict], rounds: int, memory: bool,
            hashed: bool = False) -> None:
    """``rounds`` alternations of COPY and import (each into the emptied deployment), medians printed."""
    if not users:
        return
    copies, imports, preparing, queries = [], [], [], 0
    for _ in range(rounds):
        copied, prepared = copy_rows(deployment, users)
        copies.append(copied)
        preparing.append(prepared)
        empty_table()
        elapsed, queries = imported(principal, deployment, users)
        imports.append(elapsed)
        empty_table()
    baseline, ours, count = statistics.median(copies), statistics.median(imports), len(users)
    print(f"{label}: {count} users, median of {rounds} rounds")
    print(f"  baseline: bare COPY of the same rows            {count / baseline:10.0f} users/s ({baseline:6.2f} s)")
    print(f"  mqtt_users_import                               {count / ours:10.0f} users/s ({ours:6.2f} s), "
          f"{queries} queries through Django's cursor (its COPY is not seen there)")
    print(f"  ratio: {ours / baseline:.1f}x the COPY's time per user (lower is better)")
    if hashed:
        floor = baseline + statistics.median(preparing)
        print(f"  PBKDF2 of every password on one thread, then the COPY {count / floor:10.0f} users/s ({floor:6.2f} s) "
              f"-> the import (a thread per core) takes {ours / floor:.2f}x that")
    if memory:
        peak = peak_memory(principal, deployment, users)
        empty_table()
        print(f"  peak memory of the import (tracemalloc, one more import): {peak / 2**20:.1f} MiB "
              f"= {peak / count:.0f} bytes per user")
        with tempfile.TemporaryDirectory() as workdir:
            json_peak, csv_peak, streamed = request_memory(principal, deployment, users, workdir)
        print(f"  as a request body, from disk: JSON read whole and parsed, peak {json_peak / 2**20:.1f} MiB; "
              f"text/csv streamed, peak {csv_peak / 2**20:.1f} MiB ({json_peak / csv_peak:.1f}x less)")
        print(f"  streamed text/csv import                        {count / streamed:10.0f} users/s ({streamed:6.2f} s) "
              f"-> {streamed / baseline:.1f}x the COPY's time per user")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=int(os.environ.get("BENCH_MQTT_IMPORT_USERS", "100000")),
                        help="pre-hashed rows (at most the API's 100,000)")
    parser.add_argument("--plain", type=int, default=int(os.environ.get("BENCH_MQTT_IMPORT_PLAIN", "2000")),
                        help="plain-password rows")
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_MQTT_IMPORT_ROUNDS", "3")))
    parser.add_argument("--database", default="mqcloud_bench_mqtt_import", help="the throwaway database's name")
    args = parser.parse_args(argv)
    with benchmark_database(args.database):
        from controlplane.celery import app as celery_app
        from deployments.tests.factories import DeploymentFactory
        from projects.tenancy import Principal
        from projects.tests.factories import OrganizationFactory

        organization = OrganizationFactory()
        principal = Principal.for_system(organization)
        deployment = DeploymentFactory(organization=organization)
        print(f"bench mqtt import (PostgreSQL {_server_version()}):")
        compare("pre-hashed rows", principal, deployment, prehashed_rows(args.users), args.rounds, memory=True)
        compare("plain-password rows (PBKDF2 per row)", principal, deployment, plain_rows(args.plain),
                args.rounds, memory=False, hashed=True)
        celery_app.control.purge()  # the pushes the imports enqueued; no broker runs here
    return 0


def _server_version() -> str:
    from django.db import connection

    number = connection.cursor().connection.info.server_version
    return f"{number // 10000}.{number % 10000}"


if __name__ == "__main__":
    sys.exit(main())
