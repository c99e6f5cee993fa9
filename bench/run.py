#!/usr/bin/env python
"""Benchmarks: the cost of our API layers, as ratios against a baseline measured in the same run.

Baseline: GET /healthz (Django request cycle, no auth, no database). Measured:
- GET /api/v1/projects?limit=50 with an API key over 1,000 projects (auth, tenancy, throttles, pagination)
- GET /api/v1/audit-events?action=project with 5,000 events (filter + cursor pagination)
- POST /api/v1/projects with an Idempotency-Key replayed (the replay path)

Ratios, not seconds, are the numbers to compare between runs: they cancel out the machine's speed.
Run with `make bench` (PostgreSQL and Redis as in `make test`); it uses a throwaway test database.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
os.environ.setdefault("MQCLOUD_PROFILE", "test")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "200"))


def timed(label: str, call, rounds: int = ROUNDS) -> float:
    for _ in range(10):
        call()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    median = statistics.median(samples)
    print(f"  {label:<52} median {median * 1000:8.3f} ms")
    return median


def main() -> int:
    setup_test_environment()
    settings.API_RATE_LIMITS = {"credential": "", "ip": "", "signup": ""}
    # Persistent connections, as in production; otherwise every request pays for a new PostgreSQL login.
    connection.settings_dict["CONN_MAX_AGE"] = 60
    # Its own database name, so a benchmark never clobbers the test suite's database.
    connection.settings_dict.setdefault("TEST", {})["NAME"] = "mqcloud_bench"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        from deployments.services import catalog_sync
        from projects.models import AuditEvent, Project
        from projects.tests.factories import OrganizationFactory, make_api_key

        catalog_sync()
        organization = OrganizationFactory()
        _, secret = make_api_key(organization)
        Project.objects.bulk_create(Project(organization=organization, name=f"p{i}") for i in range(1000))
        AuditEvent.objects.bulk_create(
            AuditEvent(organization=organization, actor_type="system", action=f"project.{'create' if i % 2 else 'x'}")
            for i in range(5000)
        )
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        anon = APIClient()

        print(f"bench: {ROUNDS} rounds each, median per request")
        baseline = timed("baseline GET /healthz", lambda: anon.get("/healthz"))
        results = {
            "GET /projects?limit=50 (1,000 rows)": timed(
                "GET /api/v1/projects?limit=50", lambda: client.get("/api/v1/projects", {"limit": 50})),
            "GET /audit-events?action=project (5,000 rows)": timed(
                "GET /api/v1/audit-events?action=project", lambda: client.get("/api/v1/audit-events",
                                                                              {"action": "project"})),
        }
        client.post("/api/v1/projects", {"name": "idem"}, format="json", HTTP_IDEMPOTENCY_KEY="bench")
        results["POST /projects replayed by Idempotency-Key"] = timed(
            "POST /api/v1/projects (idempotent replay)",
            lambda: client.post("/api/v1/projects", {"name": "idem"}, format="json", HTTP_IDEMPOTENCY_KEY="bench"),
        )
        print("ratios against the baseline (lower is better):")
        for label, value in results.items():
            print(f"  {label:<52} {value / baseline:6.1f}x")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
