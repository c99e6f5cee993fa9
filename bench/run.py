#!/usr/bin/env python
"""API layers: the cost of our request stack, as ratios against a baseline measured in the same run.

Baseline: GET /healthz (Django request cycle, no auth, no database). Measured:
- GET /api/v1/projects?limit=50 with an API key over 1,000 projects (auth, tenancy, throttles, pagination)
- GET /api/v1/audit-events?action=project with 5,000 events (filter + cursor pagination)
- POST /api/v1/projects with an Idempotency-Key replayed (the replay path)

Ratios, not seconds, are the numbers to compare between runs: they cancel out the machine's speed.
"""

from __future__ import annotations

import os
import sys

from harness import benchmark_database, median_seconds

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "200"))


def main() -> int:
    with benchmark_database("mqcloud_bench_api"):
        from rest_framework.test import APIClient

        from projects.models import AuditEvent, Project
        from projects.tests.factories import OrganizationFactory, make_api_key

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

        print(f"bench api: {ROUNDS} rounds each, median per request")
        baseline = median_seconds("baseline GET /healthz", lambda: anon.get("/healthz"), ROUNDS)
        results = {
            "GET /projects?limit=50 (1,000 rows)": median_seconds(
                "GET /api/v1/projects?limit=50", lambda: client.get("/api/v1/projects", {"limit": 50}), ROUNDS),
            "GET /audit-events?action=project (5,000 rows)": median_seconds(
                "GET /api/v1/audit-events?action=project",
                lambda: client.get("/api/v1/audit-events", {"action": "project"}), ROUNDS),
        }
        client.post("/api/v1/projects", {"name": "idem"}, format="json", HTTP_IDEMPOTENCY_KEY="bench")
        results["POST /projects replayed by Idempotency-Key"] = median_seconds(
            "POST /api/v1/projects (idempotent replay)",
            lambda: client.post("/api/v1/projects", {"name": "idem"}, format="json", HTTP_IDEMPOTENCY_KEY="bench"),
            ROUNDS,
        )
        print("ratios against the baseline (lower is better):")
        for label, value in results.items():
            print(f"  {label:<56} {value / baseline:6.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
