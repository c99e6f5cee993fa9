"""``/metrics``: a bearer token or nothing, requests by route pattern, Celery task metrics, and what a scrape reads
from Redis and the database (queue depths, periodic job ages, evaluation and metering lag)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.test import Client, override_settings
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from alerts.delivery import DeliveryResult
from alerts.services.notifications import notification_attempt_record
from alerts.tests.factories import NotificationFactory
from controlplane import telemetry
from controlplane.models import PendingTask
from controlplane.queue import registered_task
from controlplane.task_records import task_failure_record, task_heartbeat_record

pytestmark = pytest.mark.django_db

TOKEN = "scrape-" + "x" * 32


def scrape(client: Client) -> dict[str, dict[tuple, float]]:
    """Every sample by name, keyed by its sorted labels."""
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def test_metrics_need_the_scrape_token():
    client = Client()
    assert client.get("/metrics").status_code == 404  # no token configured: the route does not exist
    with override_settings(METRICS_SCRAPE_TOKEN=TOKEN):
        for header in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"}, {"HTTP_AUTHORIZATION": f"Basic {TOKEN}"},
                       {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}x"}):
            response = client.get("/metrics", **header)
            assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")
        assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_metrics_are_not_in_the_api_schema():
    schema = Client().get("/api/v1/schema", HTTP_ACCEPT="application/json").json()
    assert schema["paths"] and not any(path in ("/metrics", "/api/v1/metrics") for path in schema["paths"])


@override_settings(METRICS_SCRAPE_TOKEN=TOKEN)
def test_requests_are_counted_and_timed_by_route_pattern_not_path():
    client = Client()
    for _ in range(2):
        client.get("/healthz")
    client.get(f"/api/v1/deployments/dep_{uuid.uuid4().hex[:20]}")  # 401: no credentials
    client.get(f"/no-such-page-{uuid.uuid4().hex}")
    samples = scrape(client)
    counts = samples["mqcloud_http_requests_total"]
    assert counts[(("method", "GET"), ("route", "healthz"), ("status", "200"))] >= 2
    assert counts[(("method", "GET"), ("route", "api/v1/deployments/(?P<pk>[a-z]{3}_[a-z0-9]+)"),
                   ("status", "401"))] >= 1
    assert counts[(("method", "GET"), ("route", "unmatched"), ("status", "404"))] >= 1
    assert not any("dep_" in value or "no-such-page" in value for key in counts for _, value in key)
    buckets = samples["mqcloud_http_request_duration_seconds_bucket"]
    assert buckets[(("le", "+Inf"), ("method", "GET"), ("route", "healthz"))] >= 2


def test_a_task_run_shows_in_the_task_metrics():
    name = "controlplane.tasks.rate_counters_purge"

    def value(metric: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(metric, {"task": name, **labels}) or 0.0

    runs, durations = value("mqcloud_celery_task_runs_total", state="SUCCESS"), value(
        "mqcloud_celery_task_duration_seconds_count")
    registered_task(name).apply()  # eagerly, through Celery's tracer and its signals
    assert value("mqcloud_celery_task_runs_total", state="SUCCESS") == runs + 1
    assert value("mqcloud_celery_task_duration_seconds_count") == durations + 1


def test_a_failing_task_is_counted_as_failed():
    from controlplane.celery import app

    @app.task(name="tests.metrics.failing")
    def failing():
        raise RuntimeError("broken on purpose")

    labels = {"task": "tests.metrics.failing"}
    before = REGISTRY.get_sample_value("mqcloud_celery_task_failures_total", labels) or 0.0
    failing.apply()
    assert REGISTRY.get_sample_value("mqcloud_celery_task_failures_total", labels) == before + 1
    assert REGISTRY.get_sample_value("mqcloud_celery_task_runs_total", {**labels, "state": "FAILURE"}) >= 1


@override_settings(METRICS_SCRAPE_TOKEN=TOKEN)
def test_a_scrape_reads_queue_depths_job_ages_and_lags():
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    queue = telemetry.celery_queue_names()[0]
    broker.delete(queue)
    try:
        broker.rpush(queue, b"{}", b"{}", b"{}")
        now = timezone.now()
        task_heartbeat_record(task_name="alerts.tasks.alerts_evaluate", now=now - timedelta(seconds=90))
        task_heartbeat_record(task_name="billing.tasks.usage_meter_recent", now=now - timedelta(minutes=70))
        task_failure_record(task_name="deployments.tasks.deployments_reconcile_region", task_id="t1", args=["r"],
                            kwargs={}, exception=RuntimeError("cluster down"))
        assert scrape(Client())["mqcloud_pending_tasks"][()] == 0
        PendingTask.objects.create(task_name="alerts.tasks.notifications_send", args=[["ntf_1"]],
                                   created_at=now - timedelta(seconds=120))
        samples = scrape(Client())
    finally:
        broker.delete(queue)
        broker.close()
    assert samples["mqcloud_celery_queue_length"][(("queue", queue),)] == 3
    assert 90 <= samples["mqcloud_alert_evaluation_lag_seconds"][()] < 120
    assert 4200 <= samples["mqcloud_metering_lag_seconds"][()] < 4230
    assert samples["mqcloud_pending_tasks"][()] == 1
    assert 120 <= samples["mqcloud_pending_task_oldest_age_seconds"][()] < 150
    assert samples["mqcloud_task_failures_last_hour"] == {
        (("task", "deployments.tasks.deployments_reconcile_region"),): 1}
    ages = samples["mqcloud_periodic_task_last_success_age_seconds"]
    assert {dict(key)["task"] for key in ages} == {"alerts.tasks.alerts_evaluate", "billing.tasks.usage_meter_recent"}


def test_no_queue_depth_on_a_broker_without_a_cheap_count():
    assert list(telemetry.QueueDepthCollector("filesystem://localhost/", ["celery"]).collect()) == []


def test_delivery_outcomes_are_counted_by_channel_type():
    notification = NotificationFactory()
    labels = {"channel_type": notification.channel.type, "outcome": "delivered"}
    before = REGISTRY.get_sample_value("mqcloud_notification_deliveries_total", labels) or 0.0
    notification_attempt_record(notification, DeliveryResult(delivered=True, status_code=200), final=True)
    assert REGISTRY.get_sample_value("mqcloud_notification_deliveries_total", labels) == before + 1


@override_settings(METRICS_SCRAPE_TOKEN=TOKEN)
def test_a_worker_serves_its_own_task_metrics_with_the_same_token():
    import urllib.error
    import urllib.request

    server = telemetry.worker_metrics_serve(address="127.0.0.1", port=0)
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=5)  # noqa: S310 (a loopback URL of our own)
        assert refused.value.code == 401
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            assert b"mqcloud_celery_task_runs_total" in response.read()
    finally:
        server.shutdown()
        server.server_close()
