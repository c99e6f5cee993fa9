"""Liveness and readiness probes (no auth): for load balancers and Kubernetes."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

from controlplane.celery import app

logger = logging.getLogger(__name__)


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "not ready"; the message says which
        return f"{type(exc).__name__}: {exc}"
    return None


def _check_broker() -> str | None:
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _check_database(), "broker": _check_broker()}
    ready = all(v is None for v in checks.values())
    body = {
        "status": "ready" if ready else "not ready",
        "checks": {name: ("ok" if error is None else error) for name, error in checks.items()},
    }
    if not ready:
        logger.warning("readiness failed: %s", body["checks"])
    if not settings.DEBUG and not ready:
        body["checks"] = {name: ("ok" if error is None else "failed") for name, error in checks.items()}
    return JsonResponse(body, status=200 if ready else 503)


class ProbeMiddleware:
    """Answers GET /healthz and /readyz before the host check and the HTTPS redirect.

    The kubelet probes a pod by its IP over plain HTTP. Further in, ALLOWED_HOSTS refuses that Host (400: the
    pod would never become ready) and SECURE_SSL_REDIRECT answers 301, which the kubelet counts as success, so
    readiness would pass without the database or the broker ever being checked. The probes read nothing from
    the request, so skipping those layers for them alone costs nothing.
    """

    probes = {"/healthz": healthz, "/readyz": readyz}

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = self.probes.get(request.path_info)
        if probe is not None and request.method in {"GET", "HEAD"}:
            return probe(request)
        return self.get_response(request)
