"""Metrics collector: scrapes every running deployment's broker metrics, concurrently and bounded.

The brokers' metrics endpoints are our own infrastructure (not customer URLs), so this uses a plain urllib3
pool with short timeouts rather than the guarded outbound client.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import urllib3
from django.conf import settings
from django.utils import timezone

from alerts.models import COUNTER_METRICS, MetricSample
from deployments.models import Deployment, DeploymentStatus

logger = logging.getLogger(__name__)

_pool = urllib3.PoolManager(num_pools=4, maxsize=32, retries=False)


def broker_metrics_url(deployment: Deployment) -> str:
    return f"{settings.KUBERNETES_SIMULATOR_URL.rstrip('/')}/_sim/brokers/{deployment.namespace}/metrics"


def scrape(deployment: Deployment) -> dict[str, Any] | None:
    """The broker's raw metrics, or None when it cannot be read in time (logged, never raised)."""
    timeout = urllib3.Timeout(connect=settings.METRICS_SCRAPE_CONNECT_TIMEOUT_S,
                              read=settings.METRICS_SCRAPE_READ_TIMEOUT_S)
    try:
        response = _pool.request("GET", broker_metrics_url(deployment), timeout=timeout,
                                 headers={"Accept": "application/json"}, preload_content=True)
    except urllib3.exceptions.HTTPError as exc:
        logger.warning("metrics scrape of %s failed: %s", deployment.id, exc)
        return None
    if response.status != 200:
        logger.warning("metrics scrape of %s answered %s", deployment.id, response.status)
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def map_metrics(raw: dict[str, Any], *, max_connections: int, previous: dict[str, tuple[float, datetime]],
                now: datetime) -> dict[str, float]:
    """Broker metrics → the public metric names (plus raw counters for the next rate computation)."""
    values: dict[str, float] = {}
    connections = float(raw.get("connections") or 0)
    values["connections"] = connections
    values["connections_pct"] = round(100.0 * connections / max_connections, 2) if max_connections else 0.0
    values["messages_in_rate"] = float(raw.get("messages_received_rate") or 0)
    values["messages_out_rate"] = float(raw.get("messages_sent_rate") or 0)
    status = raw.get("rule_engine_resource_status", "connected")
    values["rule_engine_resources_down"] = 0.0 if status == "connected" else 1.0
    for counter, (raw_name, rate_name) in COUNTER_METRICS.items():
        if raw_name not in raw:
            continue
        total = float(raw[raw_name] or 0)
        values[counter] = total
        if counter in previous:
            before, then = previous[counter]
            elapsed = (now - then).total_seconds()
            if elapsed > 0:
                # A counter that went down means the broker restarted: count from zero again.
                delta = total - before if total >= before else total
                values[rate_name] = round(delta / elapsed, 4)
    return values


def _previous_counters(deployment_ids: list[str], now: datetime) -> dict[str, dict[str, tuple[float, datetime]]]:
    window = now - timedelta(seconds=settings.METRICS_RATE_WINDOW_S)
    rows = (MetricSample.objects.filter(deployment_id__in=deployment_ids, metric__in=list(COUNTER_METRICS),
                                        at__gte=window, at__lt=now)
            .order_by("at").values_list("deployment_id", "metric", "value", "at"))
    latest: dict[str, dict[str, tuple[float, datetime]]] = {}
    for deployment_id, metric, value, at in rows:
        latest.setdefault(deployment_id, {})[metric] = (value, at)
    return latest


def metrics_collect(*, now: datetime | None = None) -> int:
    """Scrapes every running deployment once and stores the samples; returns the number of deployments read."""
    now = now or timezone.now()
    deployments = list(Deployment.objects.filter(status=DeploymentStatus.RUNNING).select_related("spec"))
    if not deployments:
        return 0
    # Each request has its own short timeout and the pool is bounded: a slow broker delays only its own worker.
    with ThreadPoolExecutor(max_workers=settings.METRICS_SCRAPE_CONCURRENCY) as pool:
        raw_by_deployment = list(zip(deployments, pool.map(scrape, deployments), strict=True))
    previous = _previous_counters([d.id for d in deployments], now)
    samples: list[MetricSample] = []
    read = 0
    for deployment, raw in raw_by_deployment:
        if raw is None:
            continue
        read += 1
        values = map_metrics(raw, max_connections=deployment.spec.max_connections,
                             previous=previous.get(deployment.id, {}), now=now)
        samples += [MetricSample(organization_id=deployment.organization_id, deployment=deployment, metric=metric,
                                 value=value, at=now) for metric, value in values.items()]
    MetricSample.objects.bulk_create(samples, ignore_conflicts=True, batch_size=2000)
    return read
