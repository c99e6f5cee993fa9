"""``GET /metrics``: the control plane's Prometheus metrics, for a scraper holding ``METRICS_SCRAPE_TOKEN``.

Not part of the API (no ``/api/v1`` prefix, not in the schema). Without a token configured the route answers 404,
as if it did not exist; with one, a request without the right bearer token gets 401. Besides what the processes
counted (``controlplane.telemetry``), a scrape reads a few cheap facts from the database and the broker: queue
depths, when each periodic job last finished, tasks that failed for good, and the evaluation and metering lags.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from alerts import facade as alerts
from billing import facade as billing
from controlplane import telemetry
from controlplane.selectors import pending_tasks_summary, task_failure_counts_since, task_heartbeats
from controlplane.task_records import periodic_task_names


class DatabaseLagCollector(Collector):
    """Five small queries a scrape: the heartbeats of the periodic jobs (one row each), the last hour's task
    failures (a table capped at 1,000 rows), the tasks kept while the broker was away, and the two lags that
    operators watch (heartbeats too, named for what falls behind)."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        periodic = periodic_task_names()
        ages = GaugeMetricFamily("mqcloud_periodic_task_last_success_age_seconds",
                                 "Seconds since a periodic job last finished without an error.", labels=["task"])
        for name, at in sorted(task_heartbeats().items()):
            if name in periodic:
                ages.add_metric([name], max(0.0, (now - at).total_seconds()))
        yield ages
        # Failed for good (retries exhausted), as recorded by the workers: visible here whichever host they run on.
        failures = GaugeMetricFamily("mqcloud_task_failures_last_hour",
                                     "Tasks that failed for good in the last hour, by task.", labels=["task"])
        for name, count in sorted(task_failure_counts_since(since=now - timedelta(hours=1)).items()):
            failures.add_metric([name], count)
        yield failures
        # Kept while the broker was unreachable: a count that does not drain means beat or the broker is still away.
        pending, oldest = pending_tasks_summary()
        yield GaugeMetricFamily("mqcloud_pending_tasks", "Tasks kept in the database until the broker takes them.",
                                value=pending)
        yield GaugeMetricFamily("mqcloud_pending_task_oldest_age_seconds",
                                "Seconds the oldest task kept for the broker has waited (0 when none).",
                                value=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
        for metric, documentation, lag in (
                ("mqcloud_alert_evaluation_lag_seconds", "Seconds since the alert rules were last evaluated.",
                 alerts.evaluation_lag_seconds(now=now)),
                ("mqcloud_metering_lag_seconds", "Seconds since usage was last metered.",
                 billing.metering_lag_seconds(now=now))):
            if lag is not None:  # never recorded: no sample (an alert on absent() covers a job that never ran)
                yield GaugeMetricFamily(metric, documentation, value=lag)


def scrape_collectors() -> list[Collector]:
    return [telemetry.QueueDepthCollector(settings.CELERY_BROKER_URL, telemetry.celery_queue_names()),
            DatabaseLagCollector()]


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not getattr(settings, "METRICS_SCRAPE_TOKEN", ""):
        return HttpResponse("Not found.\n", status=404, content_type="text/plain")
    if not telemetry.scrape_token_valid(request.headers.get("Authorization", "")):
        response = HttpResponse("A bearer token is required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(telemetry.exposition(scrape_collectors()), content_type=CONTENT_TYPE_LATEST)
