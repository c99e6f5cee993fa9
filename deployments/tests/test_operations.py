"""Operations (issue 18): each async endpoint's 202 carries a Location that, polled, ends terminal; cancel
allowed and refused; another organization's operation is a 404; a retried worker resumes from the recorded step."""

from __future__ import annotations

import pytest

from deployments.models import Deployment, Operation, OperationEvent
from deployments.operations import progress
from projects.tests.factories import OrganizationFactory, make_api_key
from tests.support import running_worker, simulated_cluster, wait_for


def follow(api, response, expect: str = "succeeded") -> dict:
    assert response.status_code == 202, response.content
    location = response["Location"]
    assert location == f"/api/v1/operations/{response.json()['operation']}"

    def terminal():
        body = api.get(location).json()
        return body if body["status"] in ("succeeded", "failed", "cancelled") else None

    body = wait_for(terminal, f"{location} to end")
    assert body["status"] == expect, body
    assert all(step["status"] == "succeeded" for step in body["steps"]), body["steps"]
    assert body["finished_at"] and body["started_at"]
    return body


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_every_lifecycle_location_polled_to_the_end(project_api):
    api = project_api
    with simulated_cluster(seed=11), running_worker():
        response = api.post("/api/v1/deployments", {"project": api.project.id, "name": "ops",
                                                    "region": "aws-us-east-1", "spec": "basic-1k"}, format="json")
        dep = response.json()["id"]
        created = follow(api, response)
        assert created["type"] == "create" and [s["name"] for s in created["steps"]] == [
            "pending", "provisioning", "running"]
        assert follow(api, api.post(f"/api/v1/deployments/{dep}/scale", {"spec": "basic-5k"},
                                    format="json"))["type"] == "scale"
        assert follow(api, api.post(f"/api/v1/deployments/{dep}/stop"))["type"] == "stop"
        assert follow(api, api.post(f"/api/v1/deployments/{dep}/start"))["type"] == "start"
        deleted = follow(api, api.delete(f"/api/v1/deployments/{dep}"))
        assert deleted["type"] == "delete"
    listed = api.get("/api/v1/operations", {"deployment": dep}).json()["results"]
    assert [o["type"] for o in listed] == ["delete", "start", "stop", "scale", "create"]
    assert api.get("/api/v1/operations", {"type": "scale"}).json()["results"][0]["deployment"] == dep
    events = OperationEvent.objects.filter(operation_id=created["id"]).values_list("to_status", flat=True)
    assert list(events)[0] == "pending" and list(events)[-1] == "succeeded"


@pytest.mark.django_db
def test_cancel_a_pending_create_and_refuse_a_running_step(project_api, make_client):
    api = project_api
    response = api.post("/api/v1/deployments", {"project": api.project.id, "name": "c1",
                                                "region": "aws-us-east-1", "spec": "basic-1k"}, format="json")
    location = response["Location"]
    # Another organization sees no such operation.
    _, secret = make_api_key(OrganizationFactory())
    stranger = make_client(secret)
    assert stranger.get(location).status_code == 404
    assert stranger.post(location + "/cancel").status_code == 404

    cancelled = api.post(location + "/cancel")
    assert cancelled.status_code == 200, cancelled.content
    assert cancelled.json()["status"] == "cancelled"
    assert Deployment.objects.get(pk=response.json()["id"]).status == "deleting"

    again = api.post(location + "/cancel")
    assert again.status_code == 409
    assert again["Content-Type"].startswith("application/problem+json")


@pytest.mark.django_db
def test_a_retried_worker_resumes_from_the_recorded_step(project_api):
    api = project_api
    response = api.post("/api/v1/deployments", {"project": api.project.id, "name": "r1",
                                                "region": "aws-us-east-1", "spec": "basic-1k"}, format="json")
    operation = Operation.objects.get(pk=response.json()["operation"])
    assert operation.status == "pending" and operation.current_step == "pending"
    # A worker records "provisioning", then dies; its retry records it again: nothing changes.
    progress.operation_step(operation, "provisioning")
    progress.operation_step(operation, "provisioning")
    operation.refresh_from_db()
    assert operation.status == "running" and operation.current_step == "provisioning"
    assert [s["status"] for s in operation.steps] == ["succeeded", "running", "pending"]
    assert OperationEvent.objects.filter(operation=operation, step="provisioning").count() == 1
    # Not cancellable past pending.
    refused = api.post(response["Location"] + "/cancel")
    assert refused.status_code == 409
    progress.operation_succeed(operation)
    progress.operation_succeed(operation)  # a retried finish
    progress.operation_fail(operation, "late")  # a late failure after the end changes nothing
    operation.refresh_from_db()
    assert operation.status == "succeeded" and operation.error == ""


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_peering_locations_polled_to_the_end(make_client, aws_cloud):
    from deployments.models import Peering, Spec
    from deployments.peering import customer_side
    from deployments.tests.conftest import CUSTOMER_ACCOUNT
    from deployments.tests.factories import DeploymentFactory

    organization = OrganizationFactory()
    _, secret = make_api_key(organization)
    api = make_client(secret)
    deployment = DeploymentFactory(organization=organization, spec=Spec.objects.get(id="pro-1k"))
    vpc_id = customer_side.ensure_customer_vpc(CUSTOMER_ACCOUNT, "us-east-1", "10.20.0.0/16")
    with running_worker():
        created = api.post(f"/api/v1/deployments/{deployment.id}/peerings",
                           {"provider": "aws", "account_id": CUSTOMER_ACCOUNT, "vpc_id": vpc_id,
                            "region": "us-east-1", "cidr": "10.20.0.0/16"}, format="json")
        location = created["Location"]

        def requested():
            body = api.get(location).json()
            return body if body["current_step"] == "requested" else None

        assert wait_for(requested, "the peering requested")["status"] == "running"
        customer_side.play(Peering.objects.get(pk=created.json()["id"]))
        body = follow(api, created)
        assert body["type"] == "peering_create" and body["peering"] == created.json()["id"]
        assert follow(api, api.delete(f"/api/v1/peerings/{body['peering']}"))["type"] == "peering_delete"


@pytest.mark.django_db
def test_switch_to_annual_links_its_operation(make_client):
    from deployments.tests.factories import DeploymentFactory

    organization = OrganizationFactory()
    _, secret = make_api_key(organization)
    api = make_client(secret)
    deployment = DeploymentFactory(organization=organization)
    response = api.post(f"/api/v1/deployments/{deployment.id}/subscription/switch-to-annual", {"renew": True},
                        format="json")
    assert response.status_code == 200, response.content
    assert response.json()["mode"] == "annual"
    body = api.get(response["Location"]).json()
    assert body["type"] == "switch_to_annual" and body["status"] == "succeeded"
    assert body["id"] == response.json()["operation"]


@pytest.mark.django_db
def test_an_exclusive_operation_is_refused_while_another_runs(project_api):
    from controlplane import errors
    from deployments.tests.factories import DeploymentFactory

    deployment = DeploymentFactory(organization=project_api.project.organization, status="running")
    first = progress.operation_start(organization_id=deployment.organization_id, type="upgrade",
                                     deployment=deployment, steps=[("scheduled", True), "rolling", "done"])
    with pytest.raises(errors.Conflict):
        progress.operation_start(organization_id=deployment.organization_id, type="upgrade",
                                 deployment=deployment, steps=["rolling"])
    # A cancellable step (a scheduled upgrade) is cancelled through the API.
    response = project_api.post(f"/api/v1/operations/{first.id}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert Deployment.objects.get(pk=deployment.pk).status == "running"


@pytest.mark.django_db
def test_console_shows_running_operations_with_their_steps():
    from deployments.tests.factories import DeploymentFactory
    from tests.support import console_login, console_page

    client, membership = console_login()
    deployment = DeploymentFactory(organization=membership.organization, status="running")
    progress.operation_start(organization_id=deployment.organization_id, type="scale", deployment=deployment,
                             steps=progress.LIFECYCLE_STEPS["scale"])
    section = console_page(client, "deployment-operations", deployment.id)
    assert "Scale" in section and "scaling" in section and 'hx-trigger="every 2s"' in section
    listed = console_page(client, "operations")
    assert deployment.id in listed and "running" in listed
    assert f"/deployments/{deployment.id}/operations" in console_page(client, "deployment-detail", deployment.id)
