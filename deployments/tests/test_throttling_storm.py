"""A storm from one cluster (429s that ask us to wait, 503s that don't) while a batch of deployments is
created: our side never sends faster than the cluster's rate limit, every deployment still ends up running,
and nothing is created twice. Real Celery worker, real HTTP to the simulated API server."""

from __future__ import annotations

import pytest
from django.test import override_settings
from kubernetes import client as k8s_client

from deployments.models import Deployment, DeploymentEvent
from deployments.tests.test_lifecycle_integration import create, wait_status
from k8s.clusters import forget_clients
from tests.support import running_worker, simulated_cluster

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

QPS, BURST = 10, 5


def test_a_storm_is_throttled_and_retried_without_losing_work(project_api):
    with simulated_cluster(seed=11) as cluster, override_settings(KUBERNETES_CLIENT_QPS=QPS,
                                                                   KUBERNETES_CLIENT_BURST=BURST):
        forget_clients()  # the next client takes its bucket from these settings
        cluster.faults.add(verb="patch", status=429, retry_after_s=1, rate=0.3, count=4)
        cluster.faults.add(verb="get", resource="statefulsets", status=503, rate=0.3, count=2)
        cluster.faults.add(verb="patch", resource="services", status=500, count=1)
        with running_worker():
            created = [create(project_api, name=f"storm-{n}") for n in range(3)]
            for body in created:
                wait_status(project_api, body["id"], "running")
        assert cluster.faults.rules() == []  # every injected failure was hit, and survived
        # The token bucket's promise, seen from the server: never more than a burst plus a second's worth.
        assert cluster.busiest_second() <= BURST + QPS  # unthrottled, this storm peaks at 24
        apps = k8s_client.AppsV1Api(cluster.api_client())
        for body in created:
            namespace = Deployment.objects.get(pk=body["id"]).namespace
            assert [s.metadata.name for s in apps.list_namespaced_stateful_set(namespace).items] == ["emqx"]
            assert DeploymentEvent.objects.filter(deployment_id=body["id"], to_status="running").count() == 1
