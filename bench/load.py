#!/usr/bin/env python
"""Load: mixed console and API traffic of 200 simulated users against the production web tier, on loopback
(issue 16, item 6).

What it does, in order:
1. Seeds a throwaway database (``--database``) with ``--tenants`` organizations (50), each with an owner API key,
   ``--projects`` projects (20) and ``--deployments`` running deployments (12) with endpoints and a TLS server
   certificate, and an owner with logged-in console sessions (made directly, as the login form would leave them:
   logging 100 users in through the form would be 100 PBKDF2 hashes); plus one organization of the size
   ``run.py`` measures (``--ratio-projects`` 1,000 projects, ``--ratio-deployments`` 300 deployments) for the
   ratio. Secrets are encrypted with a Fernet key made for the run.
2. Collects the static files into a scratch directory (the image does at build time) and starts gunicorn as the
   image does, ``bin/container-entrypoint web`` (deploy/gunicorn.conf.py: workers from the CPUs, gthread with 4
   threads, recycling, JSON access log), in the production profile (DEBUG off, persistent database
   connections, JSON logs, HTTPS behind one proxy, ``NUM_PROXIES=1`` as in the manifests). What differs from a
   pod, each for a reason: ``GUNICORN_CMD_ARGS`` binds 127.0.0.1 on a free port (loopback only) and puts the
   control socket in the scratch directory; ``ALLOWED_HOSTS=127.0.0.1``; ``DJANGO_SETTINGS_MODULE=load_settings``,
   the product's settings with a URLconf that adds the bare views of ``bare_views.py`` (``/bare/projects``,
   ``/bare/deployments``) in front of every route of the product, and static files collected by the manifest
   storage without compressing them (load_settings.py says why); the Azure credentials production requires are
   placeholders (the web tier never calls Azure); and the API's rate limits are raised to 1,000,000/min per key
   and per address (counted in Redis on every request, as in production, but never refusing), because the ratio
   phase sends hundreds of requests a second with one key. The product's defaults (600/min per key, 1,200/min
   per address) are untouched. ``--web-concurrency`` sets ``WEB_CONCURRENCY`` (default: the image's own
   choice, 2 x CPUs + 1).
3. Runs ``load_users.py`` (locust, headless, as a library, in its own process; its docstring has the details):
   ``--users`` (200) users, half console and half API, each thinking ``--think-time`` (1–3 s) between requests
   and with its own client address in ``X-Forwarded-For``, spawned at ``--spawn-rate`` a second, measured for
   ``--duration`` seconds (60) after ``--warmup`` (5); then, on the same gunicorn, ``GET
   /api/v1/projects?limit=50`` and ``GET /api/v1/deployments?limit=50`` against their bare views (the same 50
   rows: checked first) by ``--ratio-users`` users (16) with no think time for ``--ratio-seconds`` (30) each,
   switching side ``2 x --ratio-slices`` (6) times.
4. Prints, per request kind and overall: requests, requests/s, p50/p95/p99 (ms, exact: every sample kept) and
   failures (any status but the page's or call's success status, connection errors, timeouts) with their
   reasons; gunicorn's CPU per request; the 5xx lines of gunicorn's access log; the CPU seconds of gunicorn and
   of the load generator and the machine's load average; and for each list endpoint the ratio of requests per
   second of the API to its bare view, and of server CPU per request of the bare view to the API (higher is
   better for both, 1.0 is "as cheap as the bare view").

Locust runs on the same cores as gunicorn: the ratio phase's load generator takes CPU from the server, which
narrows the gap in requests per second between the API and the bare view (the bare view, being faster, is held
back more); the CPU-per-request ratio does not depend on that.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness import ROOT, benchmark_database
from seed import console_sessions, seed_organization

BENCH_DIR = Path(__file__).resolve().parent
CONSOLE_SESSIONS_PER_TENANT = 4
FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.250"}


def _progress(message: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def seed(args: argparse.Namespace) -> tuple[list[dict], dict]:
    """The tenants of the mixed traffic, and the organization of the ratio with its key."""
    from deployments.models import Deployment

    tenants = []
    for number in range(args.tenants):
        organization, secret = seed_organization(projects=args.projects, deployments=args.deployments,
                                                 name_prefix=f"t{number}-")
        tenants.append({
            "api_key": secret,
            "sessions": console_sessions(organization, CONSOLE_SESSIONS_PER_TENANT),
            "deployments": list(Deployment.objects.filter(organization=organization).values_list("id", flat=True)),
        })
    organization, secret = seed_organization(projects=args.ratio_projects, deployments=args.ratio_deployments)
    return tenants, {"organization_id": organization.pk, "api_key": secret}


# Straight to the loopback server, whatever proxy the environment names.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with _DIRECT.open(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


@contextmanager
def web_server(environment: dict[str, str], log_path: Path) -> Iterator[tuple[str, int]]:
    """gunicorn through the image's entrypoint on a free loopback port; yields its URL and process id once
    /readyz answers."""
    started, port, scratch = time.monotonic(), free_port(), log_path.parent
    env = {**os.environ, **environment, "PORT": str(port), "BENCH_STATIC_ROOT": str(scratch / "static"),
           # Loopback only, and a control socket of its own (the default is one per user, in ~/.gunicorn).
           "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{port} --control-socket {scratch / 'gunicorn.ctl'}",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": os.pathsep.join([str(BENCH_DIR), str(ROOT)])}
    entrypoint = [sys.executable, str(ROOT / "bin" / "container-entrypoint")]
    # As the image's build does; the manifest storage of production refuses to render a page without it.
    collected = subprocess.run([*entrypoint, "manage", "collectstatic", "--noinput", "-v", "0"], env=env,
                               check=False, capture_output=True, text=True)
    if collected.returncode != 0:
        raise SystemExit(f"collectstatic failed ({collected.returncode}):\n{collected.stderr[-3000:]}")
    with open(log_path, "wb") as log:
        server = subprocess.Popen([*entrypoint, "web"], env=env,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = started + 90
        while _get(f"{url}/readyz", {})[0] != 200:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"gunicorn did not become ready:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        _progress(f"gunicorn ready at {url} in {time.monotonic() - started:.1f} s (static files collected)")
        yield url, server.pid
    finally:
        # Quick shutdown: the measurement is over (a graceful one waits ~5 s more for the arbiter's housekeeping).
        server.send_signal(signal.SIGQUIT)
        try:
            server.wait(timeout=40)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def server_environment(ratio_organization_id: str, secret_key: str, field_key: str,
                       web_concurrency: int | None) -> dict[str, str]:
    from django.conf import settings

    environment = {
        "MQCLOUD_PROFILE": "production", "DJANGO_SETTINGS_MODULE": "load_settings",
        "DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": secret_key, "FIELD_ENCRYPTION_KEYS": field_key,
        "ALLOWED_HOSTS": "127.0.0.1", "CSRF_TRUSTED_ORIGINS": "https://127.0.0.1", "NUM_PROXIES": "1",
        "KUBERNETES_CLUSTERS_JSON": "{}", "BENCH_BARE_ORGANIZATION_ID": ratio_organization_id,
        "API_RATE_LIMIT_CREDENTIAL": "1000000/min", "API_RATE_LIMIT_IP": "1000000/min",
        "PEERING_AZURE_TENANT_ID": "unused-by-the-web-tier", "PEERING_AZURE_CLIENT_ID": "unused-by-the-web-tier",
        "PEERING_AZURE_CLIENT_SECRET": "unused-by-the-web-tier",
        "WEB_WORKER_TMP_DIR": "/dev/shm",
    }
    if web_concurrency:
        environment["WEB_CONCURRENCY"] = str(web_concurrency)
    return environment


def check_same_rows(url: str, api_key: str, endpoint: str) -> None:
    api_status, api_body = _get(f"{url}/api/v1/{endpoint}?limit=50",
                                {**FORWARDED, "Authorization": f"Bearer {api_key}"})
    bare_status, bare_body = _get(f"{url}/bare/{endpoint}", FORWARDED)
    if api_status != 200 or bare_status != 200:
        raise SystemExit(f"{endpoint}: the API answered {api_status}, the bare view {bare_status}: {api_body[:300]!r}")
    api_ids = [row["id"] for row in json.loads(api_body)["results"]]
    bare_ids = [row["id"] for row in json.loads(bare_body)["results"]]
    if api_ids != bare_ids or not api_ids:
        raise SystemExit(f"{endpoint}: the API and the bare view serve different rows")


def measure(args: argparse.Namespace) -> dict:
    """Everything but making the database: the smoke test runs it in the test suite's own."""
    import secrets

    from cryptography.fernet import Fernet
    from django.test import override_settings

    secret_key, field_key = secrets.token_urlsafe(50), Fernet.generate_key().decode()
    # The sessions' hashes and the encrypted columns must be those the server will check and decrypt.
    started = time.monotonic()
    with override_settings(SECRET_KEY=secret_key, FIELD_ENCRYPTION_KEYS=[field_key]):
        tenants, ratio_tenant = seed(args)
    _progress(f"seeded {args.tenants} tenants and the ratio's organization in {time.monotonic() - started:.1f} s")
    endpoints = {name: {"api": f"/api/v1/{name}?limit=50", "bare": f"/bare/{name}"} for name in args.ratio_endpoints}
    plan = {"users": args.users, "spawn_rate": args.spawn_rate, "duration_s": args.duration, "tenants": tenants,
            "warmup_s": args.warmup, "think_s": args.think_time,
            "ratio": {"users": args.ratio_users, "seconds": args.ratio_seconds, "slices": args.ratio_slices,
                      "api_key": ratio_tenant["api_key"], "endpoints": endpoints}}
    environment = server_environment(ratio_tenant["organization_id"], secret_key, field_key, args.web_concurrency)
    with tempfile.TemporaryDirectory(prefix="mqcloud-load-") as scratch:
        work = Path(scratch)
        (work / "plan.json").write_text(json.dumps(plan))
        with web_server(environment, work / "gunicorn.log") as (url, server_pid):
            plan["host"], plan["server_pid"] = url, server_pid
            (work / "plan.json").write_text(json.dumps(plan))
            for name in endpoints:
                check_same_rows(url, ratio_tenant["api_key"], name)
            usage = CpuUsage()
            driver = subprocess.run([sys.executable, str(BENCH_DIR / "load_users.py"), str(work / "plan.json"),
                                     str(work / "result.json")], check=False,
                                    timeout=args.duration + 10 * args.ratio_seconds + 300)
            cpu = usage.seconds()
            _progress("load generator done")
            if driver.returncode != 0:
                raise SystemExit(f"the load generator failed ({driver.returncode})")
        result = json.loads((work / "result.json").read_text())
        result["cpu"] = cpu
        result["server"] = server_log_summary((work / "gunicorn.log").read_text())
        if args.server_log:
            Path(args.server_log).write_bytes((work / "gunicorn.log").read_bytes())
    report(args, result)
    return result


class CpuUsage:
    """CPU seconds of the load generator from now on, and the machine's load: on a shared machine, they say
    whether the load generator was short of CPU or took it from the server."""

    def __init__(self) -> None:
        self.children_start = self._children_seconds()
        self.started, self.load_start = time.monotonic(), os.getloadavg()[0]

    @staticmethod
    def _children_seconds() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def seconds(self) -> dict:
        return {"wall_s": time.monotonic() - self.started,
                "load_generator_s": self._children_seconds() - self.children_start,
                "load_average": [self.load_start, os.getloadavg()[0]], "cpus": len(os.sched_getaffinity(0))}


def server_log_summary(log: str) -> dict:
    """Workers started before the first request and since (recycled after WEB_MAX_REQUESTS), answers by status."""
    workers, recycled, statuses = 0, 0, {}
    for line in log.splitlines():
        if "Booting worker" in line:
            if statuses:
                recycled += 1
            else:
                workers += 1
        elif line.startswith("{") and '"status"' in line:
            status = json.loads(line).get("status", 0)
            statuses[status] = statuses.get(status, 0) + 1
    return {"workers": workers, "workers_recycled": recycled, "statuses": statuses}


def _row(label: str, figures: dict) -> str:
    return (f"  {label:<34} {figures['requests']:>8} {figures['per_second']:>8.1f} {figures['p50_ms']:>8.1f}"
            f" {figures['p95_ms']:>8.1f} {figures['p99_ms']:>8.1f} {figures['failures']:>7}")


def report(args: argparse.Namespace, result: dict) -> None:
    mixed, server = result["mixed"], result["server"]
    low, high = args.think_time
    print(f"bench load: {mixed['users']} users (half console, half API; {low:g}-{high:g} s think time) for "
          f"{mixed['seconds']:.0f} s"
          f" against bin/container-entrypoint web ({server['workers']} gunicorn workers x "
          f"{os.environ.get('WEB_THREADS', '4')} threads, {server['workers_recycled']} recycled during the run), "
          f"{args.tenants} tenants")
    print(f"  {'kind':<34} {'requests':>8} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, figures in mixed["kinds"].items():
        print(_row(name, figures))
    print(_row("all", mixed["total"]))
    recycled = " (a worker was recycled meanwhile: its successor's boot counts)" if mixed["workers_changed"] else ""
    print(f"  gunicorn CPU while measured: {mixed['server_cpu_s']:.1f} s, "
          f"{1000 * mixed['server_cpu_s'] / max(mixed['total']['requests'], 1):.1f} ms per request{recycled}")
    for reason, count in sorted(mixed["total"]["errors"].items()):
        print(f"  error: {count} x {reason}")
    server_errors = {status: n for status, n in server["statuses"].items() if int(status) >= 500}
    print(f"  gunicorn access log: {sum(server['statuses'].values())} requests, 5xx: {server_errors or 'none'}")
    cpu = result["cpu"]
    print(f"load generator: {cpu['load_generator_s']:.0f} CPU seconds in {cpu['wall_s']:.0f} s on {cpu['cpus']} CPUs;"
          f" load average {cpu['load_average'][0]:.1f} at the start, "
          f"{cpu['load_average'][1]:.1f} at the end")
    print(f"ratio, same gunicorn, {args.ratio_users} users without think time, "
          f"{args.ratio_slices} alternating slices of {args.ratio_seconds / args.ratio_slices / 2:.1f} s each side:")
    for figures in result["ratio"].values():
        sides = "   ".join(f"{figures[side]['path']} {figures[side]['per_second']:7.1f} req/s (p50 "
                           f"{figures[side]['p50_ms']:.1f} ms, {figures[side]['failures']} errors)"
                           for side in ("api", "bare"))
        print(f"  {sides}   API / bare {figures['ratio']:.2f}x")
        api, bare = figures["api"], figures["bare"]
        print(f"    server CPU per request: API {api['server_cpu_ms_per_request']:.1f} ms, bare "
              f"{bare['server_cpu_ms_per_request']:.1f} ms   bare / API {figures['cpu_ratio']:.2f}x   (windows without"
              f" a worker recycled: {api['cpu_windows']}/{api['windows']} and {bare['cpu_windows']}/{bare['windows']})")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--spawn-rate", type=float, default=50)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=5, help="seconds after spawning before measuring")
    parser.add_argument("--think-time", type=float, nargs=2, default=[1.0, 3.0], metavar=("MIN", "MAX"))
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--projects", type=int, default=20)
    parser.add_argument("--deployments", type=int, default=12)
    parser.add_argument("--ratio-users", type=int, default=16)
    parser.add_argument("--ratio-seconds", type=float, default=30)
    parser.add_argument("--ratio-slices", type=int, default=6)
    parser.add_argument("--ratio-projects", type=int, default=1000)
    parser.add_argument("--ratio-deployments", type=int, default=300)
    parser.add_argument("--ratio-endpoints", nargs="+", default=["projects", "deployments"],
                        choices=["projects", "deployments"])
    parser.add_argument("--web-concurrency", type=int, default=None)
    parser.add_argument("--server-log", help="keep gunicorn's log (access and errors) in this file")
    parser.add_argument("--database", default="mqcloud_bench_load")
    return parser


def main() -> int:
    args = parser().parse_args()
    with benchmark_database(args.database):
        measure(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
