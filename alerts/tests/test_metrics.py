"""Metrics: scraped over HTTP from the simulated cluster's broker endpoints, stored, served by the API."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import override_settings
from django.utils import timezone
from kubernetes import client as k8s_client

from alerts.metrics import metrics_collect
from alerts.models import MetricSample
from alerts.services.retention import metric_samples_purge
from alerts.tasks import metrics_collect as metrics_collect_task
from deployments.tests.factories import DeploymentFactory
from k8s.simulator import SimulatedCluster
from projects.roles import Role
from projects.tests.factories import OrganizationFactory, make_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def cluster():
    with SimulatedCluster(ready_delay_s=0.05, seed=3) as simulated:
        with override_settings(KUBERNETES_SIMULATOR_URL=simulated.url):
            yield simulated


def broker(cluster, **kwargs):
    deployment = DeploymentFactory(**kwargs)
    core = k8s_client.CoreV1Api(cluster.api_client())
    core.create_namespace(k8s_client.V1Namespace(metadata=k8s_client.V1ObjectMeta(name=deployment.namespace)))
    return deployment


@pytest.fixture
def api(make_client):
    organization = OrganizationFactory()
    _, secret = make_api_key(organization)
    client = make_client(secret)
    client.organization = organization
    return client


def test_collect_maps_broker_metrics_and_rates(cluster, api):
    deployment = broker(cluster, organization=api.organization)  # basic-1k: max 1000 connections
    stopped = broker(cluster, organization=api.organization, status="stopped")
    now = timezone.now().replace(microsecond=0)
    cluster.metrics.steer(deployment.namespace, {
        "connections": 850, "messages_received_rate": 12.5, "messages_sent_rate": 20,
        "messages_dropped": 100, "authentication_failures": 10, "rule_failures": 0,
        "rule_engine_resource_status": "connected"})
    assert metrics_collect(now=now) == 1
    cluster.metrics.steer(deployment.namespace, {"messages_dropped": 160, "authentication_failures": 40,
                                                 "rule_failures": 3, "rule_engine_resource_status": "disconnected"})
    assert metrics_collect(now=now + timedelta(seconds=30)) == 1
    assert not MetricSample.objects.filter(deployment=stopped).exists()

    body = api.get(f"/api/v1/deployments/{deployment.id}/metrics").json()
    assert body["deployment"] == deployment.id
    assert body["metrics"] == {
        "connections": 850.0, "connections_pct": 85.0, "messages_in_rate": 12.5, "messages_out_rate": 20.0,
        "messages_dropped_rate": 2.0, "auth_failures_rate": 1.0, "rule_engine_resources_down": 1.0,
        "rule_failures_rate": 0.1}


def test_metrics_without_samples_are_null(cluster, api):
    deployment = broker(cluster, organization=api.organization)
    body = api.get(f"/api/v1/deployments/{deployment.id}/metrics").json()
    assert body["at"] is None and body["metrics"]["connections"] is None


def test_time_series_bucketed_averages(cluster, api):
    deployment = broker(cluster, organization=api.organization)
    start = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=10)
    for i, connections in enumerate([100, 200, 300, 500]):
        cluster.metrics.steer(deployment.namespace, {"connections": connections})
        metrics_collect(now=start + timedelta(seconds=30 * i))
    response = api.get(f"/api/v1/deployments/{deployment.id}/metrics",
                       {"metric": "connections", "since": (start - timedelta(minutes=1)).isoformat(), "step": 60})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["metric"] == "connections" and body["step"] == 60
    assert [(p["value"], p["samples"]) for p in body["points"]] == [(150.0, 2), (400.0, 2)]


def test_unknown_metric_is_400(cluster, api):
    deployment = broker(cluster, organization=api.organization)
    response = api.get(f"/api/v1/deployments/{deployment.id}/metrics", {"metric": "cpu_temperature"})
    assert response.status_code == 400
    assert "metric" in response.json()["errors"]


def test_metrics_of_another_organization_is_404(cluster, api):
    other = broker(cluster)
    assert api.get(f"/api/v1/deployments/{other.id}/metrics").status_code == 404


def test_viewer_reads_metrics(cluster, make_client):
    organization = OrganizationFactory()
    _, secret = make_api_key(organization, role=Role.VIEWER)
    deployment = broker(cluster, organization=organization)
    assert make_client(secret).get(f"/api/v1/deployments/{deployment.id}/metrics").status_code == 200


def test_rerun_of_same_instant_is_a_no_op(cluster):
    deployment = broker(cluster)
    now = timezone.now()
    metrics_collect(now=now)
    count = MetricSample.objects.filter(deployment=deployment).count()
    metrics_collect(now=now)
    assert MetricSample.objects.filter(deployment=deployment).count() == count


def test_purge_keeps_the_retention_window(cluster):
    deployment = broker(cluster)
    now = timezone.now()
    metrics_collect(now=now - timedelta(days=8))
    metrics_collect(now=now - timedelta(days=1))
    with override_settings(METRICS_RETENTION_DAYS=7):
        assert metric_samples_purge(now=now) > 0
    assert set(MetricSample.objects.filter(deployment=deployment).values_list("at", flat=True)) == {
        now - timedelta(days=1)}


class _SlowBrokers(BaseHTTPRequestHandler):
    slow: set[str] = set()

    def do_GET(self) -> None:  # noqa: N802 (http.server's hook name)
        namespace = self.path.split("/")[3]
        if namespace in self.slow:
            time.sleep(3)
        body = json.dumps({"connections": 5, "rule_engine_resource_status": "connected"}).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass

    def log_message(self, *args) -> None:
        pass


def test_one_slow_broker_does_not_delay_the_rest():
    deployments = [DeploymentFactory() for _ in range(6)]
    _SlowBrokers.slow = {deployments[0].namespace}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowBrokers)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with override_settings(KUBERNETES_SIMULATOR_URL=f"http://127.0.0.1:{server.server_port}",
                               METRICS_SCRAPE_READ_TIMEOUT_S=0.5):
            started = time.monotonic()
            assert metrics_collect() == 5
            assert time.monotonic() - started < 2.0
    finally:
        server.shutdown()
        server.server_close()
    assert not MetricSample.objects.filter(deployment=deployments[0]).exists()
    assert MetricSample.objects.filter(deployment=deployments[1], metric="connections").get().value == 5


def test_task_runs_the_collector(cluster):
    broker(cluster)
    assert metrics_collect_task.apply().get() == 1
