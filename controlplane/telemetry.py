"""Prometheus metrics of the control plane itself (``prometheus_client``), served at ``/metrics`` (``ops.metrics``).

What is counted where it happens lives here, so every app can count without importing another: HTTP requests
(``RequestMetricsMiddleware``, labelled by the resolved route pattern, never the raw path, so the number of
series stays bounded), Celery tasks (signal handlers connected in ``ControlplaneConfig.ready``), the drift pass's
findings and notification delivery outcomes (one call where the owning code already decides). What is read at
scrape time (queue depths here; lags in ``ops.metrics``) is computed by collectors when Prometheus asks.

Under gunicorn (several processes) and Celery's prefork pool, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
directory shared by the processes of one host before they start: each process writes its samples there and a
scrape adds them up (``prometheus_client``'s multiprocess mode).
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

#: Seconds; from a cached read to a slow page (the console's heaviest pages take about a second).
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Seconds; tasks range from a database purge to a rollout poll against a cluster.
_TASK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter("mqcloud_http_requests", "HTTP requests answered, by route pattern and status code.",
                        ["method", "route", "status"])
HTTP_LATENCY = Histogram("mqcloud_http_request_duration_seconds", "Time to answer an HTTP request, by route pattern.",
                         ["method", "route"], buckets=_LATENCY_BUCKETS)
TASK_RUNS = Counter("mqcloud_celery_task_runs", "Celery task runs finished, by task and final state.",
                    ["task", "state"])
TASK_DURATION = Histogram("mqcloud_celery_task_duration_seconds", "Time a Celery task ran, by task.", ["task"],
                          buckets=_TASK_BUCKETS)
TASK_FAILURES = Counter("mqcloud_celery_task_failures", "Celery task runs that raised, by task.", ["task"])
TASK_RETRIES = Counter("mqcloud_celery_task_retries", "Celery task runs that asked to be retried, by task.",
                       ["task"])
RECONCILE_CHECKED = Counter("mqcloud_reconcile_checked", "Settled deployments the drift pass compared, by region.",
                            ["region"])
RECONCILE_DRIFT = Counter("mqcloud_reconcile_drift", "Deployments the drift pass found missing or changed "
                          "objects in, by region.", ["region"])
RECONCILE_REPAIRS = Counter("mqcloud_reconcile_repairs", "Deployments the drift pass re-applied, by region.",
                            ["region"])
DELIVERY_OUTCOMES = Counter("mqcloud_notification_deliveries", "Notification delivery attempts, by channel type "
                            "and outcome (delivered, pending: retried later, failed: given up).",
                            ["channel_type", "outcome"])


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "") or os.environ.get("prometheus_multiproc_dir", "")


# --- counting ----------------------------------------------------------------------------------------------------
def reconcile_pass_recorded(*, region: str, checked: int, drifted: int, repaired: int) -> None:
    RECONCILE_CHECKED.labels(region).inc(checked)
    RECONCILE_DRIFT.labels(region).inc(drifted)
    RECONCILE_REPAIRS.labels(region).inc(repaired)


def delivery_outcome_recorded(*, channel_type: str, outcome: str) -> None:
    DELIVERY_OUTCOMES.labels(channel_type, outcome).inc()


def route_of(request: HttpRequest) -> str:
    """The URL pattern that matched (``api/v1/deployments/<pk>``), ``static`` or ``unmatched``: bounded label values
    whatever paths clients send."""
    match = getattr(request, "resolver_match", None)
    if match is not None and match.route:
        return match.route.replace("^", "").replace("$", "")
    if request.path.startswith(settings.STATIC_URL):
        return "static"
    return "unmatched"


class RequestMetricsMiddleware:
    """Outermost: counts and times every answer, whichever layer gave it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        method = request.method if request.method in _METHODS else "other"
        route = route_of(request)
        HTTP_LATENCY.labels(method, route).observe(time.perf_counter() - started)
        HTTP_REQUESTS.labels(method, route, str(response.status_code)).inc()
        return response


# --- Celery signal handlers (never raise: a metric must not fail a task) -----------------------------------------
_task_started: dict[str, float] = {}


def on_task_prerun(task_id: str = "", **_: Any) -> None:
    _task_started[task_id] = time.perf_counter()


def on_task_postrun(task_id: str = "", task: Any = None, state: str | None = None, **_: Any) -> None:
    started = _task_started.pop(task_id, None)
    name = getattr(task, "name", "") or "unknown"
    try:
        if started is not None:
            TASK_DURATION.labels(name).observe(time.perf_counter() - started)
        TASK_RUNS.labels(name, state or "UNKNOWN").inc()
    except Exception:
        logger.exception("could not record the metrics of task %s", task_id)


def on_task_failure(sender: Any = None, **_: Any) -> None:
    TASK_FAILURES.labels(getattr(sender, "name", "") or "unknown").inc()


def on_task_retry(sender: Any = None, **_: Any) -> None:
    TASK_RETRIES.labels(getattr(sender, "name", "") or "unknown").inc()


# --- read at scrape time ---------------------------------------------------------------------------------------
#: kombu's Redis transport keeps a queue's messages of priorities 3, 6 and 9 in lists of their own.
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def celery_queue_names() -> list[str]:
    # imported here: the Celery app module configures itself from settings on import
    from controlplane.celery import app

    names = {app.conf.task_default_queue or "celery"}
    names.update(queue.name for queue in app.conf.task_queues or ())
    return sorted(names)


class QueueDepthCollector(Collector):
    """Messages waiting in each Celery queue (Redis ``LLEN``). The embedded default's filesystem transport has no
    cheap count: no samples there, rather than made-up ones."""

    def __init__(self, broker_url: str, queues: Iterable[str]) -> None:
        self.broker_url = broker_url
        self.queues = list(queues)

    def collect(self) -> Iterator[Metric]:
        if not self.broker_url.startswith(("redis://", "rediss://", "unix://")):
            return
        # imported here: only a Redis broker needs the client, and the embedded default has none
        import redis

        family = GaugeMetricFamily("mqcloud_celery_queue_length", "Messages waiting in a Celery queue.",
                                   labels=["queue"])
        try:
            client = redis.Redis.from_url(self.broker_url, socket_timeout=1.0, socket_connect_timeout=1.0)
            try:
                with client.pipeline(transaction=False) as pipe:
                    for queue in self.queues:
                        for suffix in _PRIORITY_SUFFIXES:
                            pipe.llen(queue + suffix)
                    lengths = pipe.execute()
            finally:
                client.close()
        except redis.RedisError:
            logger.warning("could not read the Celery queue lengths", exc_info=True)
            return
        per_queue = len(_PRIORITY_SUFFIXES)
        for index, queue in enumerate(self.queues):
            family.add_metric([queue], sum(lengths[index * per_queue:(index + 1) * per_queue]))
        yield family


# --- the scrape ------------------------------------------------------------------------------------------------
def scrape_token_valid(authorization: str) -> bool:
    """``Authorization: Bearer <METRICS_SCRAPE_TOKEN>``, compared in constant time; no token set: never."""
    token = getattr(settings, "METRICS_SCRAPE_TOKEN", "")
    scheme, _, given = authorization.partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def exposition(extra: Iterable[Collector] = ()) -> bytes:
    """The text format of this process's metrics (or, in multiprocess mode, every process's of this host) and of
    the ``extra`` collectors, computed now."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        base = generate_latest(registry)
    else:
        base = generate_latest(REGISTRY)
    scrape_time = CollectorRegistry(auto_describe=False)
    for collector in extra:
        scrape_time.register(collector)
    return base + generate_latest(scrape_time)


# --- a Celery worker's own /metrics --------------------------------------------------------------------------------
# Task runs, retries, delivery outcomes and the drift pass are counted inside the worker processes, which serve no
# HTTP. With METRICS_WORKER_PORT set, the worker's main process serves them (every pool process's, through
# PROMETHEUS_MULTIPROC_DIR under the prefork pool) with the same bearer token as the web's /metrics.
def metrics_wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    if not scrape_token_valid(environ.get("HTTP_AUTHORIZATION", "")):
        start_response("401 Unauthorized", [("Content-Type", "text/plain"),
                                             ("WWW-Authenticate", 'Bearer realm="metrics"')])
        return [b"A bearer token is required.\n"]
    start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
    return [exposition()]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass  # one line per scrape would drown the worker's log


def worker_metrics_serve(*, address: str, port: int) -> WSGIServer:
    """Serves :func:`metrics_wsgi_app` from a daemon thread; returns the server (``server_port`` is the port)."""
    server = make_server(address, port, metrics_wsgi_app, ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="mqcloud-metrics", daemon=True).start()
    return server


def on_worker_init(**_: Any) -> None:
    port = getattr(settings, "METRICS_WORKER_PORT", 0)
    if port and getattr(settings, "METRICS_SCRAPE_TOKEN", ""):
        worker_metrics_serve(address=settings.METRICS_WORKER_ADDRESS, port=port)
