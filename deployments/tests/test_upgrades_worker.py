"""An upgrade through the API with a real Celery worker on Redis, against the simulated cluster: the task wiring
(first send, follow-ups with a countdown, the deployment lock), and the beat's re-drive of an upgrade whose task
was lost."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.celery import app as celery_app
from deployments.models import Deployment
from deployments.tasks import deployments_reconcile
from deployments.upgrades.models import DeploymentUpgrade
from tests.support import running_worker, simulated_cluster, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def cluster():
    with simulated_cluster(seed=181) as simulated:
        yield simulated


def running(api, spec: str) -> dict:
    created = api.post("/api/v1/deployments", {"project": api.project.id, "name": "fleet", "region": "aws-us-east-1",
                                               "spec": spec}, format="json").json()
    wait_for(lambda: api.get(f"/api/v1/deployments/{created['id']}").json()["status"] == "running", "running")
    return created


def test_an_upgrade_through_the_api_with_a_worker_keeps_two_of_three_nodes_ready(project_api, cluster):
    with running_worker():
        created = running(project_api, "pro-10k")
        namespace = Deployment.objects.get(pk=created["id"]).namespace
        started = time.time()
        response = project_api.post(f"/api/v1/deployments/{created['id']}/upgrade", {"version": "5.9.1"},
                                    format="json")
        assert response.status_code == 202, response.content
        done = wait_for(lambda: (body := project_api.get(response["Location"]).json())["status"] in (
            "succeeded", "failed") and body, "the upgrade", timeout=90)
    assert done["status"] == "succeeded", done
    assert project_api.get(f"/api/v1/deployments/{created['id']}").json()["broker_version"] == "5.9.1"
    assert cluster.state.min_ready(namespace, since=started, prefix="emqx-") >= 2


def test_an_upgrade_whose_task_was_lost_is_re_driven_by_the_reconciler(project_api, cluster):
    with running_worker():
        created = running(project_api, "basic-1k")
    celery_app.control.purge()
    response = project_api.post(f"/api/v1/deployments/{created['id']}/upgrade", {"version": "5.9.1"}, format="json")
    assert response.status_code == 202
    assert celery_app.control.purge() == 1  # the upgrade's first step, dropped before any worker saw it
    upgrade = DeploymentUpgrade.objects.filter(pk=response.json()["id"])
    deployments_reconcile.apply()
    assert upgrade.get().status == "scheduled"  # not yet: a live chain may still be sleeping
    upgrade.update(updated_at=timezone.now() - timedelta(hours=1))  # an hour later, nothing has looked at it
    with running_worker():
        deployments_reconcile.delay()
        wait_for(lambda: DeploymentUpgrade.objects.get(pk=response.json()["id"]).status == "succeeded", "the upgrade",
                 timeout=90)
