"""The reconciler's drift pass over a region (``provisioning.repair_region``), against the simulated cluster:
an unchanged fleet costs one LIST per kind of object and no write; what was deleted or edited by hand, or
changed on our side, is applied again, and only that."""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from kubernetes import client as k8s_client
from prometheus_client import REGISTRY

from deployments import provisioning
from deployments.models import Deployment, Spec
from deployments.tests.factories import DeploymentFactory
from k8s.drift import applied_hash
from k8s.render import render
from k8s.services import KubernetesError
from projects.tests.factories import OrganizationFactory, ProjectFactory
from tests.support import simulated_cluster

pytestmark = pytest.mark.django_db

KINDS = 8  # Namespace, ResourceQuota, NetworkPolicy, ConfigMap, Secret, Service, PodDisruptionBudget, StatefulSet


@contextlib.contextmanager
def free(_: str) -> Iterator[bool]:
    yield True


@pytest.fixture
def cluster():
    with simulated_cluster(seed=21, ready_delay_s=0.0, poll_s=0) as simulated:
        yield simulated


def running(count: int) -> list[Deployment]:
    organization = OrganizationFactory()
    project = ProjectFactory(organization=organization)
    deployments = [DeploymentFactory(organization=organization, project=project, status="pending",
                                     spec=Spec.objects.get(id="basic-1k")) for _ in range(count)]
    for deployment in deployments:
        while provisioning.deployment_converge_once(deployment.id).again_in is not None:
            time.sleep(0.005)
        deployment.refresh_from_db()
        assert deployment.status == "running"
    return deployments


def test_an_unchanged_fleet_is_listed_once_per_kind_and_not_written(cluster) -> None:
    deployments = running(3)
    cluster.reset_api_calls()
    report = provisioning.repair_region("aws-us-east-1", lock=free)
    assert (report.checked, report.repaired, report.api_calls) == (3, 0, KINDS)
    assert cluster.api_calls() == KINDS and cluster.api_calls(method="GET") == KINDS
    assert all(d.last_reconciled_at for d in Deployment.objects.filter(pk__in=[d.pk for d in deployments]))


def test_objects_deleted_or_edited_by_hand_are_repaired_in_the_next_pass(cluster) -> None:
    first, second = running(2)
    cluster.vanish("services", first.namespace, "emqx-public")
    cluster.edit("statefulsets", second.namespace, "emqx", {"spec": {"replicas": 5}})
    cluster.edit("configmaps", second.namespace, "emqx-config", {"metadata": {"labels": {"extra": "kept"}}})
    cluster.reset_api_calls()
    report = provisioning.repair_region("aws-us-east-1", lock=free)
    assert (report.checked, report.repaired) == (2, 2)
    # One apply each for the two drifted objects; the ConfigMap only gained a label of somebody else's.
    assert cluster.api_calls(method="PATCH") == 2
    core, apps = k8s_client.CoreV1Api(cluster.api_client()), k8s_client.AppsV1Api(cluster.api_client())
    assert core.read_namespaced_service("emqx-public", first.namespace).spec.type == "LoadBalancer"
    assert apps.read_namespaced_stateful_set("emqx", second.namespace).spec.replicas == 1
    cluster.reset_api_calls()
    assert provisioning.repair_region("aws-us-east-1", lock=free).repaired == 0
    assert cluster.api_calls(method="PATCH") == 0


def test_a_change_on_our_side_is_applied_to_that_deployment_only(cluster) -> None:
    first, second = running(2)
    first.dashboard_password = "changed-on-our-side"  # rendered into the deployment's bootstrap Secret
    first.save(update_fields=["dashboard_password"])
    cluster.reset_api_calls()
    report = provisioning.repair_region("aws-us-east-1", lock=free)
    assert report.repaired == 1 and cluster.api_calls(namespace=first.namespace, method="PATCH") >= 1
    assert cluster.api_calls(namespace=second.namespace, method="PATCH") == 0
    secret = k8s_client.CoreV1Api(cluster.api_client()).read_namespaced_secret("emqx-bootstrap", first.namespace)
    assert base64.b64decode(secret.data["dashboard_password"]) == b"changed-on-our-side"


def test_a_deployment_another_worker_holds_is_left_for_the_next_pass(cluster) -> None:
    (deployment,) = running(1)
    cluster.vanish("services", deployment.namespace, "emqx-public")

    @contextlib.contextmanager
    def held(_: str) -> Iterator[bool]:
        yield False

    report = provisioning.repair_region("aws-us-east-1", lock=held)
    assert (report.busy, report.repaired) == (1, 0)
    before = {name: _count(name) for name in ("drift", "repairs")}
    assert provisioning.repair_region("aws-us-east-1", lock=free).repaired == 1
    # What /metrics exports: a drifted deployment found, and repaired, in this region.
    assert {name: _count(name) - before[name] for name in before} == {"drift": 1, "repairs": 1}


def _count(name: str) -> float:
    return REGISTRY.get_sample_value(f"mqcloud_reconcile_{name}_total", {"region": "aws-us-east-1"}) or 0.0


def test_a_failing_list_raises_for_the_task_to_retry(cluster) -> None:
    running(1)
    cluster.faults.fail_next(1, status=503, verb="list", resource="statefulsets")
    with pytest.raises(KubernetesError) as failed:
        provisioning.repair_region("aws-us-east-1", lock=free)
    assert failed.value.retryable


def test_provisioning_applies_each_object_once_then_only_what_the_certificate_changed(cluster) -> None:
    """The first apply sends every object; the certificate issued once the load balancer has an address is a
    new generation, which sends only the objects whose rendering it changed (its Secret, the StatefulSet that
    mounts it), not all of them again."""
    cluster.reset_api_calls()
    (deployment,) = running(1)
    deployment.refresh_from_db()
    with_tls = provisioning.desired_cluster_spec(deployment)
    assert with_tls is not None and with_tls.tls is not None
    before = {f"{o['kind']}/{o['metadata']['name']}": applied_hash(o) for o in render(replace(with_tls, tls=None))}
    changed = [key for key, value in deployment.applied_objects.items() if before.get(key) != value]
    assert sorted(changed) == ["ConfigMap/emqx-config", "Secret/emqx-tls", "StatefulSet/emqx"]
    assert cluster.api_calls(namespace=deployment.namespace, method="PATCH") == len(before) + len(changed)
