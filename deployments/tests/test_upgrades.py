"""Issue 18, item 1: EMQX version upgrades, node by node, against the simulated cluster.

The steps are driven here by calling the task's service in a loop (what the worker does), so a worker dying is
simply a loop that stops: the next one starts from what the database recorded."""

from __future__ import annotations

import time

import pytest
from django.test import override_settings
from kubernetes import client as k8s_client

from controlplane import errors
from controlplane.workers import Step
from deployments import provisioning
from deployments.models import Deployment, DeploymentEvent, Operation, OperationEvent, Spec
from deployments.services import deployment_scale, deployment_stop
from deployments.tests.factories import DeploymentFactory
from deployments.upgrades import services
from deployments.upgrades.models import BrokerVersion, DeploymentUpgrade
from deployments.upgrades.plan import refusal, upgrade_targets
from k8s.services import observe_broker_cluster, observe_broker_pods
from projects.tenancy import Principal
from projects.tests.factories import MembershipFactory
from tests.support import simulated_cluster, wait_for

pytestmark = pytest.mark.django_db

OLD, NEW = "emqx/emqx:5.8.6", "emqx/emqx:5.9.1"


@pytest.fixture
def cluster():
    with simulated_cluster(seed=18, ready_delay_s=0.05, poll_s=0.05) as simulated:
        yield simulated


def running_deployment(spec: str = "pro-10k") -> tuple[Deployment, Principal]:
    owner = MembershipFactory()
    chosen = Spec.objects.get(pk=spec)
    deployment = DeploymentFactory(organization=owner.organization, spec=chosen, target_spec=chosen)
    provisioning.repair(deployment.id)
    wait_for(lambda: observe_broker_cluster(region_id=deployment.region_id, namespace=deployment.namespace,
                                            name=provisioning.BROKER_NAME).rolled_out, "the first rollout")
    return Deployment.objects.get(pk=deployment.pk), Principal.for_membership(owner)


def drive(upgrade_id: str, *, until=None, limit_s: float = 30.0) -> None:
    """What the worker does: one step, then the next after the delay it asks for, until done (or ``until``)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if until is not None and until(DeploymentUpgrade.objects.get(pk=upgrade_id)):
            return
        step: Step = services.upgrade_step_once(upgrade_id)
        if step.again_in is None:
            return
        time.sleep(min(step.again_in, 0.05))
    raise AssertionError(f"upgrade {upgrade_id} did not finish within {limit_s} s")


def pods(deployment: Deployment) -> dict[int, tuple[str, bool]]:
    observed = observe_broker_pods(region_id=deployment.region_id, namespace=deployment.namespace,
                                   name=provisioning.BROKER_NAME)
    return {o: (p.image, p.ready) for o, p in observed.items() if not p.terminating}


def phases(deployment: Deployment) -> list[str]:
    return [e.details["phase"] for e in DeploymentEvent.objects.filter(
        deployment=deployment, details__operation=services.UPGRADE).order_by("created_at", "id")]


def request(principal, deployment, version="5.9.1", capture=None):
    with capture(execute=False):
        return services.upgrade_request(principal=principal, deployment=deployment, version=version)


def test_a_three_node_upgrade_rolls_one_node_at_a_time_highest_first_and_keeps_two_ready(
        cluster, django_capture_on_commit_callbacks):
    deployment, principal = running_deployment("pro-10k")
    started = time.time()
    upgrade = request(principal, deployment, capture=django_capture_on_commit_callbacks)
    drive(upgrade.id)
    upgrade.refresh_from_db()
    deployment.refresh_from_db()
    assert upgrade.status == "succeeded" and upgrade.step == 3
    assert deployment.broker_version == "5.9.1"
    assert pods(deployment) == {0: (NEW, True), 1: (NEW, True), 2: (NEW, True)}
    sts = k8s_client.AppsV1Api(cluster.api_client()).read_namespaced_stateful_set("emqx", deployment.namespace)
    assert sts.spec.template.spec.containers[0].image == NEW and sts.spec.update_strategy.rolling_update.partition == 0
    # Never more than one of three nodes away (the PodDisruptionBudget's promise), from the simulator's timeline.
    assert cluster.state.min_ready(deployment.namespace, since=started, prefix="emqx-") >= 2
    nodes = [e.details["node"] for e in DeploymentEvent.objects.filter(
        deployment=deployment, details__operation="upgrade", details__phase="step").order_by("created_at", "id")]
    assert nodes == [2, 1, 0]
    assert phases(deployment) == ["scheduled", "started", "step", "step", "step", "succeeded"]
    operation = Operation.objects.get(pk=upgrade.operation_id)
    assert operation.type == "upgrade" and operation.status == "succeeded"
    assert [(step["name"], step["status"]) for step in operation.steps] == [
        ("scheduled", "succeeded"), ("emqx-2", "succeeded"), ("emqx-1", "succeeded"), ("emqx-0", "succeeded")]
    assert list(OperationEvent.objects.filter(operation=operation, note="step").values_list("step", flat=True)
                ) == ["scheduled", "emqx-1", "emqx-0"]  # each step once (emqx-2's is the move to running)
    # The reconciler's repair now renders the new version: nothing to undo.
    provisioning.repair(deployment.id)
    assert k8s_client.AppsV1Api(cluster.api_client()).read_namespaced_stateful_set(
        "emqx", deployment.namespace).spec.template.spec.containers[0].image == NEW


def test_a_single_node_upgrade_runs_a_surge_node_and_never_leaves_clients_without_one(
        cluster, django_capture_on_commit_callbacks):
    deployment, principal = running_deployment("basic-1k")
    started = time.time()
    upgrade = request(principal, deployment, capture=django_capture_on_commit_callbacks)
    drive(upgrade.id)
    upgrade.refresh_from_db()
    assert upgrade.status == "succeeded", upgrade.error
    assert pods(deployment) == {0: (NEW, True)}
    assert cluster.state.min_ready(deployment.namespace, since=started, prefix="emqx-") >= 1
    assert cluster.state.ready_below_seconds(deployment.namespace, 1, since=started, prefix="emqx-") == 0.0


def test_a_node_that_never_becomes_ready_rolls_the_deployment_back_and_fails_with_the_reason(
        cluster, django_capture_on_commit_callbacks):
    deployment, principal = running_deployment("pro-10k")
    # The new release crash-loops on node 1: node 2 upgrades fine, node 1 never comes back.
    cluster.faults.block_image_readiness(deployment.namespace, NEW, ordinal=1)
    upgrade = request(principal, deployment, capture=django_capture_on_commit_callbacks)
    with override_settings(UPGRADE_NODE_TIMEOUT_SECONDS=1):
        drive(upgrade.id)
    upgrade.refresh_from_db()
    deployment.refresh_from_db()
    assert upgrade.status == "failed"
    assert "emqx-1" in upgrade.error and "rolled back to 5.8.6" in upgrade.error
    assert deployment.broker_version == "5.8.6" and deployment.status == "running"
    # Never a half-upgraded cluster: every node back on the previous image, and ready.
    assert pods(deployment) == {0: (OLD, True), 1: (OLD, True), 2: (OLD, True)}
    assert phases(deployment) == ["scheduled", "started", "step", "rolling_back", "failed"]
    operation = Operation.objects.get(pk=upgrade.operation_id)
    assert operation.status == "failed" and operation.error == upgrade.error
    assert [(step["name"], step["status"]) for step in operation.steps] == [
        ("scheduled", "succeeded"), ("emqx-2", "succeeded"), ("emqx-1", "failed"), ("emqx-0", "pending")]


def test_a_worker_killed_midway_resumes_from_the_recorded_step(cluster, django_capture_on_commit_callbacks):
    deployment, principal = running_deployment("pro-10k")
    upgrade = request(principal, deployment, capture=django_capture_on_commit_callbacks)
    # The first worker dies once node 2 is done: nothing but the database survives it.
    drive(upgrade.id, until=lambda current: current.step == 1)
    assert DeploymentUpgrade.objects.get(pk=upgrade.id).status == "rolling"
    # A duplicate delivery of the same task, and a fresh worker, pick up at step 1.
    services.upgrade_step_once(upgrade.id)
    services.upgrade_step_once(upgrade.id)
    drive(upgrade.id)
    upgrade.refresh_from_db()
    assert upgrade.status == "succeeded"
    assert phases(deployment).count("step") == 3  # no node step recorded twice, none skipped
    assert Operation.objects.get(pk=upgrade.operation_id).status == "succeeded"
    assert pods(deployment) == {0: (NEW, True), 1: (NEW, True), 2: (NEW, True)}


def test_scale_and_stop_are_refused_while_an_upgrade_runs(cluster, django_capture_on_commit_callbacks):
    deployment, principal = running_deployment("pro-10k")
    upgrade = request(principal, deployment, capture=django_capture_on_commit_callbacks)
    services.upgrade_step_once(upgrade.id)  # started: rolling
    with pytest.raises(errors.Conflict):
        deployment_scale(principal=principal, deployment=deployment, spec=Spec.objects.get(pk="pro-50k"))
    with pytest.raises(errors.Conflict):
        deployment_stop(principal=principal, deployment=deployment)
    with pytest.raises(errors.Conflict), django_capture_on_commit_callbacks(execute=False):
        services.upgrade_request(principal=principal, deployment=deployment, version="6.0.0")


def test_targets_never_downgrade_skip_a_major_or_offer_a_deprecated_version():
    versions = list(BrokerVersion.objects.all())
    assert [v.version for v in upgrade_targets("5.8.6", versions)] == ["5.9.1", "6.0.0"]
    assert [v.version for v in upgrade_targets("4.4.19", versions)] == ["5.8.5", "5.8.6", "5.9.1"]
    assert "older" in refusal("5.8.6", "5.8.5", versions)
    assert "deprecated" in refusal("4.4.19", "5.7.2", versions)
    assert "skips a major" in refusal("4.4.19", "6.0.0", versions)
    assert "not a version" in refusal("5.8.6", "9.9.9", versions)
    assert refusal("5.8.6", "6.0.0", versions) is None
