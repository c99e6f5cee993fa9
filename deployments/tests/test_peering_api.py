"""The peering API's rules: formats, CIDRs, tiers, states and who may do what. No cloud is called here
(the worker's task is only enqueued on commit, which these tests never reach)."""

from __future__ import annotations

import pytest

from deployments.models import Peering, PeeringEvent, Region, Spec
from deployments.peering import validation
from deployments.tests.factories import DeploymentFactory, PeeringFactory
from projects.models import AuditEvent
from projects.roles import Role
from projects.tests.factories import OrganizationFactory, ProjectFactory, make_api_key

pytestmark = pytest.mark.django_db

AWS = {"provider": "aws", "account_id": "111122223333", "vpc_id": "vpc-0123456789abcdef0", "region": "us-west-2",
       "cidr": "10.20.0.0/16"}


@pytest.fixture
def org():
    return OrganizationFactory()


@pytest.fixture
def deployment(org):
    return DeploymentFactory(organization=org, spec=Spec.objects.get(id="pro-1k"))


@pytest.fixture
def api(make_client, org):
    _, secret = make_api_key(org)
    return make_client(secret)


def post(api, deployment, body):
    return api.post(f"/api/v1/deployments/{deployment.id}/peerings", body, format="json")


def test_create_records_pending_with_an_event_and_an_audit_entry(api, deployment):
    response = post(api, deployment, AWS)
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "pending" and body["deployment"] == deployment.id and body["region"] == "us-west-2"
    assert body["tenant_id"] is None
    peering = Peering.objects.get(pk=body["id"])
    assert peering.organization_id == deployment.organization_id
    assert list(PeeringEvent.objects.filter(peering=peering).values_list("to_status", flat=True)) == ["pending"]
    assert AuditEvent.objects.filter(action="peering.create", target_id=peering.id).exists()
    listed = api.get(f"/api/v1/deployments/{deployment.id}/peerings").json()["results"]
    assert [p["id"] for p in listed] == [peering.id]


@pytest.mark.parametrize(("changes", "field", "fragment"), [
    ({"account_id": "12345"}, "account_id", "12 digits"),
    ({"vpc_id": "vpc-xyz"}, "vpc_id", "VPC id"),
    ({"vpc_id": "subnet-0123456789abcdef0"}, "vpc_id", "VPC id"),
    ({"region": "mars-north-1x"}, "region", "not an AWS region"),
    ({"region": "cn-north-1"}, "region", "partition"),
    ({"cidr": "8.8.0.0/16"}, "cidr", "not a private range"),
    ({"cidr": "100.64.0.0/16"}, "cidr", "not a private range"),
    ({"cidr": "10.0.0.0/8"}, "cidr", "too large"),
    ({"cidr": "10.20.0.0/29"}, "cidr", "too small"),
    ({"cidr": "10.20.0.1/16"}, "cidr", "host bits"),
    ({"cidr": "10.20.0.0"}, "cidr", "CIDR notation"),
    ({"cidr": "fd00::/48"}, "cidr", "IPv4"),
    ({"cidr": "10.100.4.0/24"}, "cidr", "platform network"),
    ({"cidr": "10.100.0.0/16"}, "cidr", "platform network"),
    ({"account_id": ""}, "account_id", "blank"),
    ({"vpc_id": None}, "vpc_id", "null"),
    ({"tenant_id": "0a1b2c3d-0000-4000-8000-1234567890ab"}, "tenant_id", "Not used for aws"),
    ({"provider": "azure"}, "provider", "AWS VPC"),
])
def test_invalid_requests_are_400_with_the_reason_on_the_field(api, deployment, changes, field, fragment):
    response = post(api, deployment, AWS | changes)
    assert response.status_code == 400, response.content
    problem = response.json()
    assert response["Content-Type"] == "application/problem+json"
    assert fragment in " ".join(problem["errors"][field]), problem
    assert not Peering.objects.exists()


def test_overlap_with_another_peering_of_the_deployment_is_400(api, deployment):
    PeeringFactory(organization=deployment.organization, deployment=deployment, cidr="10.20.0.0/16", status="active")
    response = post(api, deployment, AWS | {"cidr": "10.20.128.0/17"})
    assert response.status_code == 400
    assert "overlaps 10.20.0.0/16" in response.json()["errors"]["cidr"][0]
    # A deleted peering frees its range.
    Peering.objects.update(status="deleted")
    assert post(api, deployment, AWS | {"cidr": "10.20.128.0/17"}).status_code == 202


def test_overlap_with_a_route_of_another_deployment_in_the_region_is_400(api, deployment):
    PeeringFactory(cidr="10.20.0.0/16", status="active")  # another organization, same region
    response = post(api, deployment, AWS)
    assert response.status_code == 400
    assert "already routed" in response.json()["errors"]["cidr"][0]
    assert "10.20.0.0/16 is already" in response.json()["detail"]


def test_azure_formats(api, org):
    deployment = DeploymentFactory(organization=org, spec=Spec.objects.get(id="pro-1k"),
                                   region=Region.objects.get(id="azure-eastus"))
    body = {"provider": "azure", "tenant_id": "nope", "subscription_id": "5F1C2B3A-0000-4000-8000-1234567890AB",
            "resource_group": "rg.", "vnet_name": "-bad", "cidr": "10.110.0.0/20"}
    problem = post(api, deployment, body).json()
    assert set(problem["errors"]) == {"tenant_id", "resource_group", "vnet_name", "cidr"}
    good = body | {"tenant_id": "0a1b2c3d-0000-4000-8000-1234567890ab", "resource_group": "my_rg(1)",
                   "vnet_name": "vnet-1", "cidr": "172.16.0.0/20"}
    response = post(api, deployment, good)
    assert response.status_code == 202, response.content
    assert response.json()["subscription_id"] == "5f1c2b3a-0000-4000-8000-1234567890ab"


def test_basic_deployment_is_409(api, org):
    deployment = DeploymentFactory(organization=org)  # basic-1k
    response = post(api, deployment, AWS)
    assert response.status_code == 409
    assert "professional or flagship" in response.json()["detail"]


def test_deployment_being_deleted_is_409(api, deployment):
    deployment.status = "deleting"
    deployment.save()
    assert post(api, deployment, AWS).status_code == 409


def test_unknown_fields_are_refused(api, deployment):
    response = post(api, deployment, AWS | {"status": "active"})
    assert response.status_code == 400
    assert "status" in response.json()["errors"]


def test_viewer_can_read_but_not_create_or_delete(make_client, org, deployment):
    peering = PeeringFactory(organization=org, deployment=deployment)
    _, secret = make_api_key(org, role=Role.VIEWER)
    viewer = make_client(secret)
    assert viewer.get(f"/api/v1/peerings/{peering.id}").status_code == 200
    assert viewer.get(f"/api/v1/deployments/{deployment.id}/peerings").status_code == 200
    assert post(viewer, deployment, AWS).status_code == 403
    assert post(viewer, deployment, {}).status_code == 403
    assert viewer.delete(f"/api/v1/peerings/{peering.id}").status_code == 403
    assert Peering.objects.get(pk=peering.id).status == "pending"


def test_stranger_gets_404(make_client, deployment):
    peering = PeeringFactory(organization=deployment.organization, deployment=deployment)
    _, secret = make_api_key(OrganizationFactory())
    stranger = make_client(secret)
    assert stranger.get(f"/api/v1/peerings/{peering.id}").status_code == 404
    assert stranger.delete(f"/api/v1/peerings/{peering.id}").status_code == 404
    assert post(stranger, deployment, AWS).status_code == 404
    assert stranger.get("/api/v1/peerings").json()["results"] == []


def test_sub_account_limited_to_projects_sees_only_their_deployments_peerings(make_client, org, deployment):
    other_project = ProjectFactory(organization=org)
    mine = DeploymentFactory(organization=org, project=other_project, spec=Spec.objects.get(id="pro-1k"))
    hidden = PeeringFactory(organization=org, deployment=deployment)
    visible = PeeringFactory(organization=org, deployment=mine)
    _, secret = make_api_key(org, role=Role.DEVELOPER, projects=[other_project])
    limited = make_client(secret)
    assert [p["id"] for p in limited.get("/api/v1/peerings").json()["results"]] == [visible.id]
    assert limited.get(f"/api/v1/peerings/{hidden.id}").status_code == 404
    assert limited.delete(f"/api/v1/peerings/{hidden.id}").status_code == 404


def test_list_filters(api, org, deployment):
    active = PeeringFactory(organization=org, deployment=deployment, status="active")
    PeeringFactory(organization=org, deployment=deployment, status="failed")
    gone = PeeringFactory(organization=org, deployment=deployment, status="deleted")
    assert [p["id"] for p in api.get("/api/v1/peerings?status=active").json()["results"]] == [active.id]
    assert len(api.get(f"/api/v1/peerings?deployment={deployment.id}").json()["results"]) == 2
    assert [p["id"] for p in api.get("/api/v1/peerings?status=deleted").json()["results"]] == [gone.id]


def test_parse_cidr_edges():
    assert validation.parse_cidr("192.168.255.240/28") == (validation.ipaddress.ip_network("192.168.255.240/28"),
                                                            None)
    assert validation.parse_cidr("172.32.0.0/16")[1] is not None  # just outside 172.16.0.0/12
    assert validation.parse_cidr("172.31.0.0/16")[1] is None
