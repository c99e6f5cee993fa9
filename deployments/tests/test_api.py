"""The Deployments API: validation, lifecycle requests and their state rules (no cluster needed)."""

from __future__ import annotations

import pytest

from deployments.models import Deployment, DeploymentEvent
from deployments.tests.factories import DeploymentFactory
from projects.models import AuditEvent
from projects.roles import Role
from projects.tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory, make_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def org():
    return OrganizationFactory()


@pytest.fixture
def project(org):
    return ProjectFactory(organization=org)


@pytest.fixture
def api(org, make_client):
    _, secret = make_api_key(org)
    return make_client(secret)


def create(api, in_project, **overrides):
    body = {"project": in_project.id, "name": "fleet", "region": "aws-us-east-1", "spec": "basic-1k"} | overrides
    return api.post("/api/v1/deployments", body, format="json")


def test_create_answers_202_pending_and_records_the_first_event(api, project):
    response = create(api, project)
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["id"].startswith("dep_")
    assert body["status"] == "pending"
    assert body["tier"] == "basic" and body["spec"] == "basic-1k" and body["region"] == "aws-us-east-1"
    assert body["project"] == project.id
    assert set(body) >= {"id", "project", "name", "tier", "spec", "region", "status", "status_reason", "endpoints",
                         "created_at"}
    assert body["deletion_protection"] is False
    events = api.get(f"/api/v1/deployments/{body['id']}/events").json()["results"]
    assert [(e["from_status"], e["to_status"]) for e in events] == [("", "pending")]
    assert AuditEvent.objects.filter(action="deployment.create", target_id=body["id"]).exists()


def test_professional_deployments_are_deletion_protected_by_default(api, project):
    body = create(api, project, spec="pro-1k").json()
    assert body["deletion_protection"] is True


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"region": "mars-1"}, "region"),
        ({"spec": "huge"}, "spec"),
        ({"spec": "flagship-100k"}, "spec"),  # not enabled for this organization
        ({"region": "aws-ap-southeast-1"}, "spec"),  # basic is not offered there
        ({"region": "aws-cn-north-1"}, "region"),  # another site's region
        ({"name": "Not_DNS"}, "name"),
        ({"name": "-leading"}, "name"),
        ({"name": "x" * 41}, "name"),
        ({"project": "prj_doesnotexist"}, "project"),
    ],
)
def test_create_rejects_bad_input_with_the_field_named(api, project, overrides, field):
    response = create(api, project, **overrides)
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    assert not Deployment.objects.exists()


def test_duplicate_name_in_a_project_is_409_but_fine_elsewhere(api, project, org):
    assert create(api, project).status_code == 202
    response = create(api, project)
    assert response.status_code == 409 and "name" in response.json()["errors"]  # like projects
    assert create(api, ProjectFactory(organization=org)).status_code == 202


def test_scale_needs_running_and_the_same_tier(api, org):
    deployment = DeploymentFactory(organization=org, status="stopped")
    url = f"/api/v1/deployments/{deployment.id}/scale"
    assert api.post(url, {"spec": "basic-5k"}, format="json").status_code == 409
    Deployment.objects.filter(pk=deployment.pk).update(status="running")
    assert api.post(url, {"spec": "pro-1k"}, format="json").status_code == 400
    assert api.post(url, {"spec": "basic-1k"}, format="json").status_code == 400
    response = api.post(url, {"spec": "basic-5k"}, format="json")
    assert response.status_code == 202
    assert response.json()["status"] == "scaling"
    assert response.json()["target_spec"] == "basic-5k" and response.json()["spec"] == "basic-1k"


def test_stop_and_start_follow_the_state_machine(api, org):
    deployment = DeploymentFactory(organization=org)
    assert api.post(f"/api/v1/deployments/{deployment.id}/start").status_code == 409
    assert api.post(f"/api/v1/deployments/{deployment.id}/stop").json()["status"] == "stopping"
    assert api.post(f"/api/v1/deployments/{deployment.id}/stop").status_code == 409
    Deployment.objects.filter(pk=deployment.pk).update(status="stopped")
    assert api.post(f"/api/v1/deployments/{deployment.id}/start").json()["status"] == "starting"
    transitions = list(DeploymentEvent.objects.filter(deployment=deployment).values_list("from_status", "to_status"))
    assert transitions == [("running", "stopping"), ("stopped", "starting")]


def test_deletion_protection_refuses_delete_until_turned_off(api, org):
    deployment = DeploymentFactory(organization=org, deletion_protection=True)
    url = f"/api/v1/deployments/{deployment.id}"
    response = api.delete(url)
    assert response.status_code == 409
    assert "protection" in response.json()["detail"]
    assert api.patch(url, {"deletion_protection": False}, format="json").status_code == 200
    first = api.delete(url)
    assert first.status_code == 202 and first.json()["status"] == "deleting"
    again = api.delete(url)
    assert again.status_code == 202 and again.json()["status"] == "deleting"
    assert DeploymentEvent.objects.filter(deployment=deployment, to_status="deleting").count() == 1


def test_project_with_deployments_cannot_be_deleted(api, org):
    deployment = DeploymentFactory(organization=org)
    assert api.delete(f"/api/v1/projects/{deployment.project_id}").status_code == 409


def test_filters_and_tenancy(api, org, make_client):
    mine = DeploymentFactory(organization=org, status="running")
    DeploymentFactory(organization=org, status="stopped", project=mine.project)
    theirs = DeploymentFactory()
    listed = api.get("/api/v1/deployments", {"status": "running"}).json()["results"]
    assert [d["id"] for d in listed] == [mine.id]
    assert api.get("/api/v1/deployments", {"status": "bogus"}).status_code == 400
    assert api.get(f"/api/v1/deployments/{theirs.id}").status_code == 404
    assert api.post(f"/api/v1/deployments/{theirs.id}/stop").status_code == 404


def test_member_limited_to_a_project_sees_only_its_deployments(org, client):
    allowed, other = ProjectFactory(organization=org), ProjectFactory(organization=org)
    inside = DeploymentFactory(organization=org, project=allowed)
    outside = DeploymentFactory(organization=org, project=other)
    member = MembershipFactory(organization=org, role=Role.DEVELOPER, projects=[allowed])
    client.force_login(member.user)
    ids = [d["id"] for d in client.get("/api/v1/deployments").json()["results"]]
    assert ids == [inside.id]
    assert client.get(f"/api/v1/deployments/{outside.id}").status_code == 404
    body = {"project": other.id, "name": "sneaky", "region": "aws-us-east-1", "spec": "basic-1k"}
    response = client.post("/api/v1/deployments", body, content_type="application/json")
    assert response.status_code == 400 and "project" in response.json()["errors"]


def test_viewer_cannot_change_deployments(org, make_client):
    deployment = DeploymentFactory(organization=org)
    _, secret = make_api_key(org, role=Role.VIEWER)
    viewer = make_client(secret)
    assert viewer.get(f"/api/v1/deployments/{deployment.id}").status_code == 200
    assert viewer.post(f"/api/v1/deployments/{deployment.id}/stop").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_with_one_name_give_one_deployment_and_409s_never_a_500(make_client):
    """Requests racing past the name check meet the partial unique constraint; the losers get 409 like a
    sequential duplicate (on PostgreSQL an IntegrityError escaped as a 500)."""
    import threading

    from django.db import connection

    org = OrganizationFactory()
    in_project = ProjectFactory(organization=org)
    _, secret = make_api_key(org)
    for round_ in range(3):
        barrier, statuses = threading.Barrier(8), []

        def attempt(barrier=barrier, statuses=statuses, name=f"racer-{round_}"):
            try:
                barrier.wait(timeout=10)
                statuses.append(create(make_client(secret), in_project, name=name).status_code)
            except Exception as exc:  # noqa: BLE001 - what the server would have turned into a 500
                statuses.append(f"{type(exc).__name__}: {exc}")
            finally:
                connection.close()

        threads = [threading.Thread(target=attempt) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(map(str, statuses)) == ["202"] + ["409"] * 7, statuses
        assert Deployment.objects.filter(project=in_project, name=f"racer-{round_}").count() == 1
    body = create(make_client(secret), in_project, name="racer-0").json()
    assert body["status"] == 409 and "name" in body["errors"]
