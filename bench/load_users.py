#!/usr/bin/env python
"""The load generator of ``load.py``: locust run as a library, headless, in its own process (locust patches the
standard library with gevent on import, which Django and psycopg must never see).

``python bench/load_users.py PLAN.json RESULT.json``: PLAN (written by ``load.py``) names the server, the tenants
(an API key, console session keys, deployment ids each) and the phases; RESULT gets the figures.

1. Mixed traffic: ``users`` simulated users, half console and half API (locust's weights), spawned at
   ``spawn_rate`` a second; once all are running and ``warmup_s`` more have passed, every request of
   ``duration_s`` seconds is recorded (its kind, time, and the reason of a failure), and gunicorn's CPU time
   (``server_pid`` and its workers) over the same span. Each user thinks ``think_s`` (a range, 1–3 s) between
   requests. A console user is logged in (a session cookie of its tenant's owner) and opens the projects page,
   the deployments list, a deployment's page, billing and alerts. An API user (its tenant's key) lists projects
   and deployments, reads a deployment, lists alerts and sometimes creates a project. Only the status the page
   or call answers when it works counts as a success (200, or 201 for the create; a redirect, to the login page
   say, is a failure).
2. Ratio, per list endpoint: ``ratio.users`` users with no think time request it, through the API (with the
   ratio organization's key) or its bare view, switching side every ``seconds / slices / 2`` seconds in the
   order A B B A A B ... so drift of the machine falls on both alike. Requests per second of a side are the
   requests *started* in its windows over the windows' length; gunicorn's CPU time is summed per side too.

Every request carries what the ingress in front of the production web tier adds: ``X-Forwarded-Proto: https``
and ``X-Forwarded-For`` with one client address per simulated user (documentation ranges: headers only, nothing
is sent there), so per-address counters see 200 clients, not one.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import sys
import time
import uuid
from collections import defaultdict

import gevent
import psutil
from locust import FastHttpUser, constant, task
from locust.env import Environment

PLAN: dict = {}
_user_numbers = itertools.count()


def client_address(number: int) -> str:
    """A distinct address per simulated user, from the documentation ranges (RFC 5737)."""
    block = ("198.51.100", "203.0.113", "192.0.2")[(number // 254) % 3]
    return f"{block}.{number % 254 + 1}"


class _TenantUser(FastHttpUser):
    abstract = True
    network_timeout = 30.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        number = next(_user_numbers)
        self.tenant = PLAN["tenants"][number % len(PLAN["tenants"])]
        self.headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": client_address(number)}
        self.number = number

    def expect(self, path: str, name: str, status: int = 200, method: str = "GET", **kwargs) -> None:
        with self.client.request(method, path, name=name, headers=self.headers, catch_response=True,
                                 allow_redirects=False, **kwargs) as response:
            if response.status_code != status:
                where = response.headers.get("Location", "") if 300 <= response.status_code < 400 else ""
                response.failure(f"HTTP {response.status_code}{' to ' + where if where else ''}")


def think_time(user: FastHttpUser) -> float:
    low, high = PLAN["think_s"]
    return random.uniform(low, high)


class ConsoleUser(_TenantUser):
    wait_time = think_time

    def on_start(self) -> None:
        super().on_start()
        sessions = self.tenant["sessions"]
        self.headers["Cookie"] = f"sessionid={sessions[self.number % len(sessions)]}"

    @task(3)
    def projects(self) -> None:
        self.expect("/console/", "console: projects")

    @task(3)
    def deployments(self) -> None:
        self.expect("/console/deployments", "console: deployments")

    @task(3)
    def deployment_detail(self) -> None:
        self.expect(f"/console/deployments/{random.choice(self.tenant['deployments'])}", "console: deployment")

    @task(1)
    def billing(self) -> None:
        self.expect("/console/billing", "console: billing")

    @task(1)
    def alerts(self) -> None:
        self.expect("/console/alerts", "console: alerts")


class ApiUser(_TenantUser):
    wait_time = think_time

    def on_start(self) -> None:
        super().on_start()
        self.headers["Authorization"] = f"Bearer {self.tenant['api_key']}"

    @task(3)
    def projects(self) -> None:
        self.expect("/api/v1/projects?limit=50", "api: GET /projects")

    @task(3)
    def deployments(self) -> None:
        self.expect("/api/v1/deployments?limit=50", "api: GET /deployments")

    @task(3)
    def deployment_detail(self) -> None:
        self.expect(f"/api/v1/deployments/{random.choice(self.tenant['deployments'])}", "api: GET /deployments/{id}")

    @task(1)
    def alerts(self) -> None:
        self.expect("/api/v1/alerts", "api: GET /alerts")

    @task(1)
    def create_project(self) -> None:
        self.expect("/api/v1/projects", "api: POST /projects", status=201, method="POST",
                    json={"name": f"load-{uuid.uuid4().hex[:12]}"})


class ListUser(_TenantUser):
    """The ratio phase: one list endpoint, API or bare view (``target``), as fast as it answers."""

    wait_time = constant(0)
    target = ("api", "")

    def on_start(self) -> None:
        super().on_start()
        self.headers["Authorization"] = f"Bearer {PLAN['ratio']['api_key']}"

    @task
    def list_rows(self) -> None:
        name, path = ListUser.target
        self.expect(path, name)


class Recorder:
    """Every request while ``on``: its kind, start, duration and failure."""

    def __init__(self) -> None:
        self.on = False
        self.samples: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self.failures: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def __call__(self, request_type, name, response_time, response_length, exception=None, **_kwargs) -> None:
        if not self.on:
            return
        self.samples[name].append((time.monotonic() - response_time / 1000, response_time))
        if exception is not None:
            self.failures[name][str(exception)[:120]] += 1


class ServerCpu:
    """CPU seconds used by gunicorn's arbiter and workers, and which workers those are. A worker recycled after
    WEB_MAX_REQUESTS takes its CPU time with it and its successor's starts with booting Django: the last figure
    seen of every process is kept, and a span over which the workers changed is flagged by its callers."""

    def __init__(self, server_pid: int) -> None:
        self.server = psutil.Process(server_pid)
        self.seen: dict[int, float] = {}

    def sample(self) -> tuple[float, frozenset[int]]:
        processes = [self.server, *self.server.children(recursive=True)]
        for process in processes:
            try:
                self.seen[process.pid] = sum(process.cpu_times()[:2])
            except psutil.Error:
                pass  # exited between the listing and the reading
        return sum(self.seen.values()), frozenset(process.pid for process in processes)


def _percentile(ordered: list[float], share: float) -> float:
    """Nearest rank: the smallest value with at least ``share`` of the samples at or below it."""
    if not ordered:
        return float("nan")
    return ordered[max(0, min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1))]


def _summary(times: list[float], failures: dict[str, int], seconds: float) -> dict:
    ordered = sorted(times)
    return {"requests": len(ordered), "failures": sum(failures.values()), "per_second": len(ordered) / seconds,
            "p50_ms": _percentile(ordered, 0.50), "p95_ms": _percentile(ordered, 0.95),
            "p99_ms": _percentile(ordered, 0.99), "max_ms": ordered[-1] if ordered else float("nan"),
            "errors": dict(failures)}


def _environment(user_classes: list) -> tuple[Environment, Recorder]:
    environment = Environment(user_classes=user_classes, host=PLAN["host"])
    recorder = Recorder()
    environment.events.request.add_listener(recorder)
    return environment, recorder


def run_mixed() -> dict:
    users, duration = PLAN["users"], PLAN["duration_s"]
    environment, recorder = _environment([ConsoleUser, ApiUser])
    runner = environment.create_local_runner()
    runner.start(users, spawn_rate=PLAN["spawn_rate"])
    spawn_deadline = time.monotonic() + users / PLAN["spawn_rate"] + 30
    while runner.user_count < users and time.monotonic() < spawn_deadline:
        gevent.sleep(0.1)
    gevent.sleep(PLAN["warmup_s"])  # every worker thread's first requests (connections, templates) not counted
    meter = ServerCpu(PLAN["server_pid"])
    started, (cpu_start, workers_start) = time.monotonic(), meter.sample()
    recorder.on = True
    gevent.sleep(duration)
    recorder.on = False
    (cpu_end, workers_end), seconds = meter.sample(), time.monotonic() - started
    runner.quit()
    kinds = {name: _summary([t for _, t in samples], recorder.failures[name], seconds)
             for name, samples in sorted(recorder.samples.items())}
    everything = [t for samples in recorder.samples.values() for _, t in samples]
    total_failures: dict[str, int] = defaultdict(int)
    for failures in recorder.failures.values():
        for reason, count in failures.items():
            total_failures[reason] += count
    return {"users": runner.user_count or users, "seconds": seconds, "kinds": kinds,
            "server_cpu_s": cpu_end - cpu_start, "workers_changed": workers_start != workers_end,
            "total": _summary(everything, total_failures, seconds)}


def run_ratio(endpoint: str, paths: dict[str, str]) -> dict:
    ratio = PLAN["ratio"]
    environment, recorder = _environment([ListUser])
    runner = environment.create_local_runner()
    ListUser.target = ("api", paths["api"])
    runner.start(ratio["users"], spawn_rate=ratio["users"])
    for side in ("api", "bare", "api"):  # warm-up: connections opened, both views' code paths run once
        ListUser.target = (side, paths[side])
        gevent.sleep(0.3)
    windows: dict[str, list[tuple[float, float]]] = {"api": [], "bare": []}
    meter = ServerCpu(PLAN["server_pid"])
    # CPU seconds per side, over the windows in which the same workers served throughout.
    cpu: dict[str, float] = {"api": 0.0, "bare": 0.0}
    cpu_windows: dict[str, list[tuple[float, float]]] = {"api": [], "bare": []}
    order = ["api", "bare"]
    slice_s = ratio["seconds"] / ratio["slices"]
    recorder.on = True
    for number in range(ratio["slices"]):
        for side in order if number % 2 == 0 else order[::-1]:
            ListUser.target = (side, paths[side])
            begin, (cpu_begin, workers_begin) = time.monotonic(), meter.sample()
            gevent.sleep(slice_s / 2)
            windows[side].append((begin, time.monotonic()))
            cpu_end, workers_end = meter.sample()
            # What the other side's requests still in flight use here is small and falls on both alike.
            if workers_end == workers_begin:
                cpu[side] += cpu_end - cpu_begin
                cpu_windows[side].append(windows[side][-1])
    # Requests still in flight finish here and count for the window they started in.
    gevent.sleep(0.5)
    recorder.on = False
    runner.quit()
    result = {}
    for side, spans in windows.items():
        starts = [start for start, _ in recorder.samples[side]
                  if any(begin <= start < end for begin, end in spans)]
        length = sum(end - begin for begin, end in spans)
        times = sorted(t for start, t in recorder.samples[side] if any(b <= start < e for b, e in spans))
        result[side] = {"requests": len(starts), "per_second": len(starts) / length,
                        "failures": sum(recorder.failures[side].values()), "errors": dict(recorder.failures[side]),
                        "p50_ms": _percentile(times, 0.5), "seconds": length, "path": paths[side],
                        "server_cpu_ms_per_request": 1000 * cpu[side] / max(sum(
                            1 for start, _ in recorder.samples[side]
                            if any(b <= start < e for b, e in cpu_windows[side])), 1),
                        "cpu_windows": len(cpu_windows[side]), "windows": len(spans)}
    result["ratio"] = result["api"]["per_second"] / result["bare"]["per_second"]
    # The same comparison in server CPU per request: the bare view's over the API's (higher is better, as above).
    result["cpu_ratio"] = (result["bare"]["server_cpu_ms_per_request"]
                           / result["api"]["server_cpu_ms_per_request"])
    return result


def main(plan_path: str, result_path: str) -> int:
    with open(plan_path) as plan_file:
        PLAN.update(json.load(plan_file))
    result = {"mixed": run_mixed(), "ratio": {}}
    for endpoint, paths in PLAN["ratio"]["endpoints"].items():
        result["ratio"][endpoint] = run_ratio(endpoint, paths)
    with open(result_path, "w") as result_file:
        json.dump(result, result_file, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
