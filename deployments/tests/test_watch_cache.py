"""Provisioning with the clusters' watch cache (``KUBERNETES_WATCH_CACHE``, on outside the test profile): the
rollout and the load balancer's address come from a watch of the whole cluster, so provisioning a deployment
costs its applies and no status reads."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from django.test import override_settings

from deployments import provisioning
from deployments.models import Spec
from deployments.tests.factories import DeploymentFactory
from k8s.clusters import watch_for_region
from k8s.services import observe_broker_cluster
from tests.support import simulated_cluster, wait_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def cluster():
    with override_settings(KUBERNETES_WATCH_CACHE=True), \
            simulated_cluster(seed=31, ready_delay_s=0.0, poll_s=0) as simulated:
        yield simulated


def provision(deployment_id: str) -> None:
    while provisioning.deployment_converge_once(deployment_id).again_in is not None:
        time.sleep(0.005)


def test_provisioning_reads_the_rollout_from_the_watch_not_with_gets(cluster) -> None:
    cache = watch_for_region("aws-us-east-1")
    assert cache is not None
    wait_for(lambda: cache.synced, "the watch cache to sync")
    deployment = DeploymentFactory(status="pending", spec=Spec.objects.get(id="basic-1k"))
    cluster.reset_api_calls()
    provision(deployment.id)
    deployment.refresh_from_db()
    assert deployment.status == "running" and deployment.endpoints["mqtt"].endswith(":1883")
    applies = cluster.api_calls(namespace=deployment.namespace, method="PATCH")
    assert applies == 10 + 3  # every object once, then the certificate's Secret, ConfigMap and StatefulSet
    assert cluster.api_calls(namespace=deployment.namespace, method="GET") == 0


def test_a_cached_statefulset_older_than_what_was_applied_is_not_rolled_out(cluster) -> None:
    """The watch event of an apply arrives a moment after the apply: until then the cache holds the previous
    StatefulSet, whose status says rolled out. It must not count as the rollout of the change."""
    cache = watch_for_region("aws-us-east-1")
    assert cache is not None
    wait_for(lambda: cache.synced, "the watch cache to sync")
    deployment = DeploymentFactory(status="pending", spec=Spec.objects.get(id="basic-1k"))
    provision(deployment.id)
    deployment.refresh_from_db()
    desired = provisioning.desired_cluster_spec(deployment)
    assert desired is not None
    now = observe_broker_cluster(region_id="aws-us-east-1", namespace=deployment.namespace, name="emqx",
                                 desired=desired)
    assert now.current and now.rolled_out
    bigger = replace(desired, cpu_millicores=desired.cpu_millicores * 2)  # applied, its event not seen yet
    stale = observe_broker_cluster(region_id="aws-us-east-1", namespace=deployment.namespace, name="emqx",
                                   desired=bigger)
    assert not stale.current and not stale.rolled_out
