"""gunicorn settings for the `web` command of the image (bin/container-entrypoint web).

Every value can be overridden from the environment (WEB_CONCURRENCY, WEB_THREADS, WEB_TIMEOUT_S, PORT, ...),
so the manifests tune the web tier without a new image.
"""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from gunicorn.glogging import Logger


def available_cpus(cgroup_cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> float:
    """CPUs this container may use: the cgroup v2 quota when there is one (a Kubernetes CPU limit), else the
    CPUs the process may run on. os.cpu_count() would report the node's cores and start a worker per core of
    a 64-core node inside a one-CPU limit, each throttled and each holding its own memory."""
    try:
        quota, period = cgroup_cpu_max.read_text().split()
        if quota != "max":
            return max(float(quota) / float(period), 0.1)
    except (OSError, ValueError):
        pass
    return float(len(os.sched_getaffinity(0)))


def default_workers(cpus: float, ceiling: int) -> int:
    # gunicorn's rule of thumb (2 x cores + 1), bounded: each worker holds a whole Django process in memory.
    return max(2, min(ceiling, int(2 * cpus) + 1))


class JsonAccessLogger(Logger):
    """One JSON object per request on the access log, so the log pipeline needs no parser for Apache's
    format, and quotes or spaces in a path or user agent cannot break a line apart."""

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta) -> None:
        if not self.access_log_enabled:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        record = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "remote_addr": atoms["h"],
            "method": atoms["m"],
            "path": atoms["U"],
            "query": atoms["q"],
            "status": int(atoms["s"]),
            "bytes": atoms["B"],
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            "user_agent": atoms["a"],
            "referer": atoms["f"],
            "forwarded_for": environ.get("HTTP_X_FORWARDED_FOR"),
            "request_id": environ.get("HTTP_X_REQUEST_ID"),
        }
        try:
            self.access_log.info(json.dumps(record, separators=(",", ":")))
        except Exception:  # a log line must never fail a request
            self.exception("access log")


bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"  # noqa: S104 - inside a container; the Service fronts it
workers = int(os.environ.get("WEB_CONCURRENCY") or default_workers(available_cpus(),
                                                                       int(os.environ.get("WEB_MAX_WORKERS", "8"))))
# Threads let a worker overlap requests that wait on PostgreSQL, Redis or a cluster's API.
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "4"))
# A request still running after this is killed; the API's slowest calls (CSV imports) stay well below it.
timeout = int(os.environ.get("WEB_TIMEOUT_S", "60"))
# On SIGTERM (a rollout, a scale-down) workers finish what they serve within this, which stays below the
# pod's terminationGracePeriodSeconds (45) so Kubernetes never kills a request half answered.
graceful_timeout = int(os.environ.get("WEB_GRACEFUL_TIMEOUT_S", "30"))
# Longer than the ingress controller's upstream keep-alive, so it never reuses a connection we just closed.
keepalive = int(os.environ.get("WEB_KEEPALIVE_S", "75"))
# Recycle workers now and then, jittered so they never restart together, to bound slow memory growth.
max_requests = int(os.environ.get("WEB_MAX_REQUESTS", "2000"))
max_requests_jitter = max_requests // 10
# The heartbeat files live in memory: the root filesystem is read-only and a disk-backed /tmp can stall them.
worker_tmp_dir = os.environ.get("WEB_WORKER_TMP_DIR", "/dev/shm")  # noqa: S108 - tmpfs by design
# X-Forwarded-* are believed only from the ingress controller's addresses (NUM_PROXIES handles client IPs).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("WEB_LOG_LEVEL", "info")
logger_class = JsonAccessLogger
