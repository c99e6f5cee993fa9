"""Issue 14, item 14: one source of truth for "live" HTTP authentication, and its rolling restart in the lifecycle.

The console said "configuration 1 has been applied" as soon as the objects were applied, while the ops site showed
the deployment at desired generation 2 / applied 1 for good (the repair that applied it never recorded the
generation). Both now read ``selectors.http_auth_rollout``; live means every node runs the configuration.
"""

from __future__ import annotations

import pytest
from django.contrib.admin.utils import quote
from django.test import Client, override_settings
from django.utils import timezone

from deployments import provisioning, selectors
from deployments.http_auth import HttpRequestSpec, http_auth_put
from deployments.models import Deployment, DeploymentEvent
from deployments.tests.factories import DeploymentFactory
from deployments.tests.http_auth_service import serve_auth
from k8s.services import observe_broker_cluster
from projects.tenancy import Principal
from projects.tests.factories import MembershipFactory, operator_user
from tests.support import simulated_cluster, wait_for

pytestmark = pytest.mark.django_db

@pytest.fixture
def auth_url():
    with serve_auth() as service:
        yield service.url


@pytest.fixture
def cluster(auth_url):
    with simulated_cluster(seed=11, ready_delay_s=0.05) as simulated:
        yield simulated


def running_deployment() -> tuple[Deployment, Principal]:
    owner = MembershipFactory()
    deployment = DeploymentFactory(organization=owner.organization)
    provisioning.repair(deployment.id)
    wait_for(lambda: observe_broker_cluster(region_id=deployment.region_id, namespace=deployment.namespace,
                                            name=provisioning.BROKER_NAME).rolled_out, "the first rollout")
    return Deployment.objects.get(pk=deployment.pk), Principal.for_membership(owner)


def save_config(principal: Principal, deployment: Deployment, url: str, capture) -> None:
    # The repair the service enqueues is run below, by hand, instead of on a worker.
    spec = HttpRequestSpec(method="post", url=url, headers={}, params={"u": "${username}"}, timeout_ms=2000)
    with capture(execute=False):
        http_auth_put(principal=principal, deployment=deployment, enabled=True, authentication=spec,
                      authorization=None)


def restart_events(deployment: Deployment) -> list[str]:
    return [event.details.get("phase") for event in DeploymentEvent.objects.filter(
        deployment=deployment, details__operation=provisioning.ROLLING_RESTART).order_by("created_at", "id")]


def test_after_the_repair_both_generations_agree_and_the_config_is_not_live_until_the_nodes_restarted(
        cluster, auth_url, django_capture_on_commit_callbacks):
    deployment, principal = running_deployment()
    save_config(principal, deployment, auth_url, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=False):
        provisioning.repair(deployment.id)
    deployment.refresh_from_db()
    # What the ops site showed thirty minutes later: desired 2 / applied 1.
    assert deployment.applied_generation == deployment.desired_generation
    state = selectors.http_auth_rollout(deployment=deployment)
    assert state is not None and state.generation == 1 and not state.live and state.state == "applying"
    assert restart_events(deployment) == ["started"]

    step = wait_for(lambda: (lambda s: s if s.again_in is None else None)(
        provisioning.http_auth_rollout_once(deployment.id)), "the rolling restart to finish")
    assert step.again_in is None
    state = selectors.http_auth_rollout(deployment=Deployment.objects.get(pk=deployment.pk))
    assert state is not None and state.live and state.state == "live"
    assert restart_events(deployment) == ["started", "finished"]
    # A repair of a settled deployment changes nothing: no second restart.
    provisioning.repair(deployment.id)
    assert restart_events(deployment) == ["started", "finished"]


def test_the_console_and_the_ops_site_say_the_same(cluster, auth_url, django_capture_on_commit_callbacks):
    deployment, principal = running_deployment()
    save_config(principal, deployment, auth_url, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=False):
        provisioning.repair(deployment.id)
    console = Client()
    console.force_login(principal.user)
    ops = Client()
    ops.force_login(operator_user("ops@example.com", "an-operator-passphrase"))
    console_url = f"/console/deployments/{deployment.id}/http-auth"
    ops_url = f"/ops/deployments/deployment/{quote(deployment.id)}/change/"

    for expected in ("Applying configuration 1", "Live: configuration 1"):
        if expected.startswith("Live"):
            wait_for(lambda: provisioning.http_auth_rollout_once(deployment.id).again_in is None, "the restart")
        console_text = " ".join(console.get(console_url).content.decode().split())
        ops_text = " ".join(ops.get(ops_url).content.decode().split())
        assert expected in console_text.replace("<strong>", "").replace("</strong>", "")
        assert expected in ops_text.replace("<strong>", "").replace("</strong>", "")


def test_a_stopped_deployment_loads_the_config_when_it_starts(cluster, auth_url, django_capture_on_commit_callbacks):
    deployment, principal = running_deployment()
    Deployment.objects.filter(pk=deployment.pk).update(status="stopped")
    deployment.refresh_from_db()
    save_config(principal, deployment, auth_url, django_capture_on_commit_callbacks)
    provisioning.repair(deployment.id)
    state = selectors.http_auth_rollout(deployment=deployment)
    assert state is not None and state.state == "waiting" and not state.live
    assert restart_events(deployment) == []


def test_a_restart_past_the_timeout_is_recorded_as_stalled_then_finishes(cluster, auth_url,
                                                                          django_capture_on_commit_callbacks):
    deployment, principal = running_deployment()
    cluster.faults.block_readiness(deployment.namespace)  # the restarted node never turns Ready
    save_config(principal, deployment, auth_url, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=False):
        provisioning.repair(deployment.id)
    with override_settings(DEPLOYMENT_OPERATION_TIMEOUT_SECONDS=0):
        assert provisioning.http_auth_rollout_once(deployment.id).again_in is None
        assert provisioning.http_auth_rollout_once(deployment.id).again_in is None  # recorded once
        assert restart_events(deployment) == ["started", "stalled"]
        issues = selectors.operations_needing_attention(now=timezone.now())
        assert [(issue.kind, issue.deployment_id) for issue in issues] == [("restart stalled", deployment.id)]
    assert selectors.http_auth_rollout(deployment=deployment).state == "applying"

    cluster.faults.unblock_readiness(deployment.namespace)
    wait_for(lambda: provisioning.http_auth_rollout_once(deployment.id).again_in is None
             and selectors.http_auth_rollout(deployment=deployment).live, "the restart to finish")
    assert restart_events(deployment) == ["started", "stalled", "finished"]
    assert selectors.operations_needing_attention(now=timezone.now()) == []
