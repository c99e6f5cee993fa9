"""The upgrade API: the valid targets, the request (400 problem+json for a version it may not go to, 409 while
the deployment is busy), scheduling at the next maintenance window, roles and audit. The rollout itself:
test_upgrades.py."""

from __future__ import annotations

import pytest
import time_machine

from controlplane.models import PendingTask
from deployments.upgrades import services
from deployments.upgrades.models import DeploymentUpgrade
from projects.models import AuditEvent
from projects.roles import Role
from projects.tests.factories import make_api_key

pytestmark = pytest.mark.django_db


# `org`, `deployment` and `api` (an owner's key) come from deployments/tests/conftest.py.
def url(deployment, tail: str) -> str:
    return f"/api/v1/deployments/{deployment.pk}/{tail}"


def assert_problem(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    if field:
        assert field in body["errors"], body
    return body


def test_targets_are_newer_supported_versions_without_skipping_a_major(api, deployment):
    body = api.get(url(deployment, "upgrades")).json()
    assert body["current"] == "5.8.6" and body["current_status"] == "current"
    assert [v["version"] for v in body["results"]] == ["5.9.1", "6.0.0"]
    assert body["upgrade"] is None
    assert api.get(f"/api/v1/deployments/{deployment.pk}").json()["broker_version"] == "5.8.6"


@pytest.mark.parametrize(("version", "why"), [("9.9.9", "not a version"), ("5.8.5", "older"),
                                              ("5.8.6", "already runs"), ("5.7.2", "older"), (591, "not a version")])
def test_a_version_it_may_not_go_to_is_a_400(api, deployment, version, why):
    body = assert_problem(api.post(url(deployment, "upgrade"), {"version": version}, format="json"), 400,
                          "version")
    assert why in body["errors"]["version"][0]


def test_deprecated_and_major_skipping_targets_are_refused(api, deployment):
    deployment.broker_version = "4.4.19"
    deployment.save(update_fields=["broker_version"])
    assert "deprecated" in assert_problem(api.post(url(deployment, "upgrade"), {"version": "5.7.2"}, format="json"),
                                          400, "version")["errors"]["version"][0]
    assert "skips a major" in assert_problem(api.post(url(deployment, "upgrade"), {"version": "6.0.0"},
                                                      format="json"), 400, "version")["errors"]["version"][0]
    assert_problem(api.post(url(deployment, "upgrade"), {"version": "5.9.1", "when": "later"}, format="json"), 400,
                   "when")


def test_an_upgrade_is_accepted_once_and_audited(api, deployment, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as sent:
        response = api.post(url(deployment, "upgrade"), {"version": "5.9.1"}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "scheduled" and body["from_version"] == "5.8.6" and body["to_version"] == "5.9.1"
    # The Operation that follows it: its id in the body, its URL in Location.
    assert body["operation"].startswith("op_") and response["Location"] == f"/api/v1/operations/{body['operation']}"
    operation = api.get(response["Location"]).json()
    assert operation["type"] == "upgrade" and operation["status"] == "pending"
    assert [step["name"] for step in operation["steps"]] == ["scheduled", "emqx-1 (surge)", "emqx-0",
                                                             "surge node removed"]
    assert len(sent) == 1  # the first step's task, sent as the worker will get it
    sent[0]()
    assert not PendingTask.objects.exists()  # a send the task refused (bad arguments) is kept as pending
    assert api.get(url(deployment, "upgrade")).json()["id"] == body["id"]
    assert AuditEvent.objects.filter(action="deployment.upgrade", target_id=deployment.pk).count() == 1
    # Another operation (this upgrade) is open: 409.
    assert_problem(api.post(url(deployment, "upgrade"), {"version": "6.0.0"}, format="json"), 409)
    assert DeploymentUpgrade.objects.filter(deployment=deployment).count() == 1


def test_a_deployment_that_is_not_running_is_a_409(api, deployment):
    deployment.status = "scaling"
    deployment.save(update_fields=["status"])
    assert_problem(api.post(url(deployment, "upgrade"), {"version": "5.9.1"}, format="json"), 409)


def test_no_upgrade_yet_is_a_404(api, deployment):
    assert_problem(api.get(url(deployment, "upgrade")), 404)


@time_machine.travel("2027-03-19T12:00:00Z", tick=False)
def test_next_window_schedules_the_upgrade_at_the_next_occurrence(api, deployment,
                                                                  django_capture_on_commit_callbacks):
    assert_problem(api.post(url(deployment, "upgrade"), {"version": "5.9.1", "when": "next_window"},
                            format="json"), 400, "when")  # no window yet
    api.put(url(deployment, "maintenance-window"), {"weekday": "sunday", "start_time": "02:30",
                                                    "length_minutes": 120, "time_zone": "UTC"}, format="json")
    with django_capture_on_commit_callbacks(execute=False):
        response = api.post(url(deployment, "upgrade"), {"version": "5.9.1", "when": "next_window"}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["scheduled_for"] .startswith("2027-03-21T02:30:00")


def test_a_viewer_may_list_targets_but_not_upgrade(org, deployment, make_client):
    _, secret = make_api_key(org, role=Role.VIEWER)
    viewer = make_client(secret)
    assert viewer.get(url(deployment, "upgrades")).status_code == 200
    assert_problem(viewer.post(url(deployment, "upgrade"), {"version": "5.9.1"}, format="json"), 403)


def test_a_scheduled_upgrade_is_cancelled_through_its_operation(api, deployment, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        body = api.post(url(deployment, "upgrade"), {"version": "5.9.1"}, format="json").json()
    assert api.post(f"/api/v1/operations/{body['operation']}/cancel").status_code in (200, 202)
    services.upgrade_step_once(body["id"])
    assert api.get(url(deployment, "upgrade")).json()["status"] == "canceled"
    assert api.get(url(deployment, "upgrades")).json()["upgrade"]["status"] == "canceled"
