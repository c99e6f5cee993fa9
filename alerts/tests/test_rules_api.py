"""Alert rules, incidents and the delivery log over the API."""

from __future__ import annotations

import pytest

from alerts.models import AlertRule
from alerts.tests.factories import AlertChannelFactory, AlertFactory, AlertRuleFactory, NotificationFactory
from deployments.tests.factories import DeploymentFactory
from projects.roles import Role
from projects.tests.factories import OrganizationFactory, ProjectFactory, make_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def org():
    return OrganizationFactory()


@pytest.fixture
def api(make_client, org):
    _, secret = make_api_key(org)
    return make_client(secret)


def rule_body(project, **extra):
    return {"name": "busy", "project": project.id, "metric": "connections_pct", "operator": ">=",
            "threshold": "80.5", **extra}


def test_create_read_update_delete(api, org):
    project = ProjectFactory(organization=org)
    deployment = DeploymentFactory(organization=org, project=project)
    channel = AlertChannelFactory(organization=org)
    response = api.post("/api/v1/alert-rules", rule_body(project, deployment=deployment.id, channels=[channel.id]),
                        format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["id"].startswith("arl_") and body["threshold"] == "80.5000" and body["channels"] == [channel.id]
    assert (body["duration_s"], body["severity"], body["repeat_interval_s"], body["enabled"]) == (
        300, "warning", 3600, True)
    rule_id = body["id"]
    response = api.patch(f"/api/v1/alert-rules/{rule_id}", {"threshold": "90", "channels": [], "enabled": False},
                         format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["channels"] == [] and response.json()["enabled"] is False
    assert [r["id"] for r in api.get("/api/v1/alert-rules", {"project": project.id}).json()["results"]] == [rule_id]
    assert api.delete(f"/api/v1/alert-rules/{rule_id}").status_code == 204
    assert not AlertRule.objects.exists()


@pytest.mark.parametrize("extra", [{"metric": "cpu"}, {"operator": "=="}, {"severity": "fatal"},
                                   {"threshold": "abc"}, {"duration_s": -1}, {"organization": "org_x"}])
def test_invalid_rule_is_400(api, org, extra):
    project = ProjectFactory(organization=org)
    assert api.post("/api/v1/alert-rules", rule_body(project, **extra), format="json").status_code == 400


def test_references_must_be_in_the_organization(api, org):
    project = ProjectFactory(organization=org)
    stranger_channel = AlertChannelFactory()
    assert api.post("/api/v1/alert-rules", rule_body(project, channels=[stranger_channel.id]),
                    format="json").status_code == 400
    assert api.post("/api/v1/alert-rules", rule_body(ProjectFactory()), format="json").status_code == 400
    other_project_deployment = DeploymentFactory(organization=org)
    assert api.post("/api/v1/alert-rules", rule_body(project, deployment=other_project_deployment.id),
                    format="json").status_code == 400
    assert api.post("/api/v1/alert-rules", rule_body(project, deployment=DeploymentFactory().id),
                    format="json").status_code == 400


def test_viewer_reads_but_cannot_write(make_client, org):
    _, secret = make_api_key(org, role=Role.VIEWER)
    viewer = make_client(secret)
    rule = AlertRuleFactory(organization=org)
    assert viewer.get(f"/api/v1/alert-rules/{rule.id}").status_code == 200
    assert viewer.post("/api/v1/alert-rules", rule_body(rule.project), format="json").status_code == 403
    assert viewer.patch(f"/api/v1/alert-rules/{rule.id}", {"name": "x"}, format="json").status_code == 403
    assert viewer.delete(f"/api/v1/alert-rules/{rule.id}").status_code == 403


def test_alert_filters(api, org):
    firing = AlertFactory(organization=org)
    resolved = AlertFactory(organization=org, state="resolved")
    AlertFactory()  # another organization's
    ids = {a["id"] for a in api.get("/api/v1/alerts").json()["results"]}
    assert ids == {firing.id, resolved.id}
    assert [a["id"] for a in api.get("/api/v1/alerts", {"state": "firing"}).json()["results"]] == [firing.id]
    assert [a["id"] for a in api.get("/api/v1/alerts", {"rule": resolved.rule_id}).json()["results"]] == [
        resolved.id]
    assert [a["id"] for a in api.get("/api/v1/alerts", {"deployment": firing.deployment_id}).json()["results"]] == [
        firing.id]


def test_project_limited_member_sees_only_its_projects_rules(make_client, org):
    mine, theirs = ProjectFactory(organization=org), ProjectFactory(organization=org)
    _, secret = make_api_key(org, role=Role.DEVELOPER, projects=[mine])
    limited = make_client(secret)
    visible = AlertRuleFactory(organization=org, project=mine)
    hidden = AlertRuleFactory(organization=org, project=theirs)
    assert [r["id"] for r in limited.get("/api/v1/alert-rules").json()["results"]] == [visible.id]
    assert limited.get(f"/api/v1/alert-rules/{hidden.id}").status_code == 404
    assert limited.post("/api/v1/alert-rules", rule_body(theirs), format="json").status_code == 400


def test_project_limited_member_sees_deliveries_of_its_projects_incidents_and_test_sends_only(make_client, org):
    mine, theirs = ProjectFactory(organization=org), ProjectFactory(organization=org)
    _, secret = make_api_key(org, role=Role.DEVELOPER, projects=[mine])
    limited = make_client(secret)
    channel = AlertChannelFactory(organization=org)
    own = NotificationFactory(organization=org, channel=channel, kind="trigger", alert=AlertFactory(
        organization=org, rule=AlertRuleFactory(organization=org, project=mine)))
    other = NotificationFactory(organization=org, channel=channel, kind="trigger", alert=AlertFactory(
        organization=org, rule=AlertRuleFactory(organization=org, project=theirs)))
    test_send = NotificationFactory(organization=org, channel=channel, kind="test")
    budget_notice = NotificationFactory(organization=org, channel=channel, kind="notice")
    seen = {n["id"] for n in limited.get("/api/v1/notifications").json()["results"]}
    assert seen == {own.id, test_send.id}
    assert other.id not in seen and budget_notice.id not in seen
    assert limited.get(f"/api/v1/notifications/{other.id}").status_code == 404
    _, owner_secret = make_api_key(org)
    assert len(make_client(owner_secret).get("/api/v1/notifications").json()["results"]) == 4
