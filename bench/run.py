#!/usr/bin/env python
"""API layers: the cost of our request stack against a bare Django view serving the same rows (issue 15).

Two ratios, each of requests per second (so higher is better, 1.0 is "as fast as the bare view"):
- ``GET /api/v1/projects?limit=50`` with an API key, over ``--projects`` projects (1,000);
- ``GET /api/v1/deployments?limit=50`` with an API key, over ``--deployments`` running deployments (300) that
  have endpoints and a TLS server certificate;
each against a bare view of the same process, URLconf and middleware that reads the same 50 rows (same
ordering, same fields) with ``.values()`` and answers ``JsonResponse({"results": rows, "next": None})``: no
authentication, throttling, tenancy, pagination or serializer. Both go through Django's ``WSGIHandler`` with a
plain WSGI environ (as gunicorn calls it), not the test client, whose bookkeeping would dilute the ratio.
Calls alternate (API, bare, API, bare, ...) so drift of the shared machine hits both alike; medians compared.
Rate limits are on (the production defaults, high enough never to refuse), so their Redis round trip counts.

Also printed, against ``GET /healthz``: the audit-event filter and the idempotent replay of a POST.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from collections.abc import Callable

from bare_views import bare_urlpatterns
from harness import benchmark_database, median_seconds
from seed import seed_organization


def _environ(path: str, query: str = "", **headers: str) -> dict:
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query, "SCRIPT_NAME": "",
        "SERVER_NAME": "testserver", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr, "wsgi.multithread": False,
        "wsgi.multiprocess": False, "wsgi.run_once": False,
    }
    environ.update({f"HTTP_{name.upper()}": value for name, value in headers.items()})
    return environ


def _caller(handler: Callable, environ: dict) -> Callable[[], bytes]:
    def call() -> bytes:
        statuses = []
        env = {**environ, "wsgi.input": io.BytesIO(b"")}
        body = b"".join(handler(env, lambda status, headers, exc_info=None: statuses.append(status)))
        if not statuses[0].startswith("200"):
            raise SystemExit(f"{environ['PATH_INFO']} answered {statuses[0]}: {body[:300]!r}")
        return body
    return call


def _paired(api: Callable[[], bytes], bare: Callable[[], bytes], rounds: int) -> tuple[float, float]:
    for _ in range(10):
        api(), bare()
    api_samples, bare_samples = [], []
    for _ in range(rounds):
        for call, samples in ((api, api_samples), (bare, bare_samples)):
            start = time.perf_counter()
            call()
            samples.append(time.perf_counter() - start)
    return statistics.median(api_samples), statistics.median(bare_samples)


def _bare_urlconf(organization) -> None:
    """The bare views (bare_views.py), in front of the real URLconf (so the same resolver, settings and
    middleware)."""
    from django.conf import settings
    from django.urls import clear_url_caches, include, path

    module = type(sys)("bench_urls")
    module.urlpatterns = [*bare_urlpatterns(organization.pk), path("", include(settings.ROOT_URLCONF))]
    sys.modules["bench_urls"] = module
    settings.ROOT_URLCONF = "bench_urls"
    clear_url_caches()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--deployments", type=int, default=300)
    parser.add_argument("--audit-events", type=int, default=5000)
    parser.add_argument("--database", default="mqcloud_bench_api")
    args = parser.parse_args()
    with benchmark_database(args.database):
        measure(args)
    return 0


def measure(args: argparse.Namespace) -> None:
    """Everything but the database: the smoke test runs it in the test suite's own."""
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    from rest_framework.test import APIClient

    # Limits that never refuse but are counted, as in production (the harness switches them off).
    settings.API_RATE_LIMITS = {"credential": "1000000/minute", "ip": "1000000/minute", "signup": ""}
    organization, secret = seed_organization(projects=args.projects, deployments=args.deployments,
                                             audit_events=args.audit_events)
    _bare_urlconf(organization)
    handler = WSGIHandler()
    auth = {"authorization": f"Bearer {secret}"}

    print(f"bench api: {args.rounds} rounds, API and bare view alternating, median per request")
    ratios = {}
    for name in ("projects", "deployments"):
        api = _caller(handler, _environ(f"/api/v1/{name}", "limit=50", **auth))
        bare = _caller(handler, _environ(f"/bare/{name}"))
        api_ids = [row["id"] for row in json.loads(api())["results"]]
        bare_ids = [row["id"] for row in json.loads(bare())["results"]]
        if api_ids != bare_ids or len(api_ids) != 50:
            raise SystemExit(f"{name}: the API and the bare view serve different rows")
        api_s, bare_s = _paired(api, bare, args.rounds)
        ratios[name] = bare_s / api_s
        print(f"  GET /api/v1/{name}?limit=50   {api_s * 1000:7.3f} ms   bare JsonResponse {bare_s * 1000:7.3f} ms")
    print("requests per second of the API / of the bare view (higher is better, target >= 0.7):")
    for name, ratio in ratios.items():
        print(f"  {name:<12} {ratio:5.2f}x")

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    rounds = max(args.rounds // 3, 5)
    print(f"other paths, {rounds} rounds through the test client, against GET /healthz (lower is better):")
    baseline = median_seconds("baseline GET /healthz", lambda: APIClient().get("/healthz"), rounds)
    others = {
        f"GET /audit-events?action=project ({args.audit_events:,} rows)": median_seconds(
            "GET /api/v1/audit-events?action=project",
            lambda: client.get("/api/v1/audit-events", {"action": "project"}), rounds),
    }
    client.post("/api/v1/projects", {"name": "idem"}, format="json", HTTP_IDEMPOTENCY_KEY="bench")
    others["POST /projects replayed by Idempotency-Key"] = median_seconds(
        "POST /api/v1/projects (idempotent replay)",
        lambda: client.post("/api/v1/projects", {"name": "idem"}, format="json", HTTP_IDEMPOTENCY_KEY="bench"),
        rounds)
    for label, value in others.items():
        print(f"  {label:<56} {value / baseline:6.1f}x")


if __name__ == "__main__":
    sys.exit(main())
