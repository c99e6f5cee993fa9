"""The reconciler's TLS step, on observations given by hand (the cluster round trip is in the integration tests)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from deployments.models import Deployment, ServerCertificate
from deployments.provisioning import _advance, desired_cluster_spec
from deployments.tests.factories import DeploymentFactory
from deployments.tls import services
from k8s.services import ObservedCluster

pytestmark = pytest.mark.django_db


def settled(host: str) -> ObservedCluster:
    return ObservedCluster(exists=True, desired_replicas=1, ready_replicas=1, updated_replicas=1, generation=2,
                           observed_generation=2, load_balancer_host=host)


def advance(deployment: Deployment, host: str):
    deployment.refresh_from_db()
    return _advance(deployment, desired_cluster_spec(deployment), settled(host), timedelta(minutes=15), 1.0)


def test_a_new_address_gets_a_certificate_applied_before_the_deployment_runs(django_capture_on_commit_callbacks):
    deployment = DeploymentFactory(status="starting", endpoints={"mqtts": "127.77.0.5:8883"})
    services.issue_for_deployment(deployment=deployment, host="127.77.0.5")
    generation = deployment.desired_generation
    step = advance(deployment, "127.77.0.9")  # the load balancer came back on another address
    assert step.note == "TLS certificate issued"
    deployment.refresh_from_db()
    assert deployment.status == "starting" and deployment.desired_generation == generation + 1
    assert ServerCertificate.objects.get(deployment=deployment).sans == ["IP:127.77.0.9"]
    tls = desired_cluster_spec(deployment).tls
    assert tls is not None and tls.certificate_chain.startswith(ServerCertificate.objects.get().certificate_pem)
    with django_capture_on_commit_callbacks(execute=False):
        advance(deployment, "127.77.0.9")  # the same address: nothing to issue, so on to running
    deployment.refresh_from_db()
    assert deployment.status == "running" and deployment.endpoints["mqtts"] == "127.77.0.9:8883"


def test_no_address_no_certificate_and_nothing_tls_rendered():
    deployment = DeploymentFactory(status="provisioning")
    assert desired_cluster_spec(deployment).tls is None
    deployment.refresh_from_db()
    _advance(deployment, desired_cluster_spec(deployment), settled(""), timedelta(minutes=15), 1.0)
    assert not ServerCertificate.objects.exists()
