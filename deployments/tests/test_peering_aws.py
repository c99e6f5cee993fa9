"""The AWS peering flow end to end against moto's server over HTTP, with two accounts: the platform's and
the customer's (reached with ``sts.assume_role`` on a role in the other account)."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest
import time_machine
from botocore.exceptions import ClientError
from django.utils import timezone

from deployments import selectors
from deployments.models import Peering, PeeringEvent, Spec
from deployments.peering import aws, customer_side, worker
from deployments.peering.aws import ec2_client
from deployments.tests.conftest import CUSTOMER_ACCOUNT
from deployments.tests.factories import DeploymentFactory
from projects.tests.factories import OrganizationFactory, make_api_key

pytestmark = pytest.mark.django_db

CUSTOMER_CIDR = "10.20.0.0/16"


@pytest.fixture
def api(make_client):
    organization = OrganizationFactory()
    _, secret = make_api_key(organization)
    client = make_client(secret)
    client.deployment = DeploymentFactory(organization=organization, spec=Spec.objects.get(id="pro-1k"))
    return client


def request_peering(api, vpc_id: str, *, cidr: str = CUSTOMER_CIDR, region: str = "us-east-1") -> dict:
    response = api.post(f"/api/v1/deployments/{api.deployment.id}/peerings",
                        {"provider": "aws", "account_id": CUSTOMER_ACCOUNT, "vpc_id": vpc_id, "region": region,
                         "cidr": cidr}, format="json")
    assert response.status_code == 202, response.content
    return response.json()


def platform_ec2():
    return ec2_client("us-east-1")


def routes_to(cidr: str, route_table_ids: list[str]) -> list[dict]:
    tables = platform_ec2().describe_route_tables(RouteTableIds=route_table_ids)["RouteTables"]
    return [route for table in tables for route in table["Routes"] if route.get("DestinationCidrBlock") == cidr]


def ingress_from(cidr: str, group_id: str) -> set[int]:
    group = platform_ec2().describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    return {p["FromPort"] for p in group["IpPermissions"] if any(r["CidrIp"] == cidr for r in p["IpRanges"])}


def converge(peering_id: str) -> Peering:
    worker.peering_converge_once(peering_id)
    return Peering.objects.get(pk=peering_id)


def test_request_accept_active_routes_then_delete(api, aws_cloud):
    network = aws_cloud["network"]
    vpc_id = customer_side.ensure_customer_vpc(CUSTOMER_ACCOUNT, "us-east-1", CUSTOMER_CIDR)
    created = request_peering(api, vpc_id)
    assert created["id"].startswith("pcx_")
    assert created["status"] == "pending"
    assert created["instructions"]["commands"] == []

    peering = converge(created["id"])
    assert peering.status == "pending_acceptance"
    assert peering.cloud_id.startswith("pcx-")
    assert peering.expires_at - peering.requested_at == timedelta(days=7)
    connection = platform_ec2().describe_vpc_peering_connections(
        VpcPeeringConnectionIds=[peering.cloud_id])["VpcPeeringConnections"][0]
    assert connection["Status"]["Code"] == "pending-acceptance"
    assert connection["RequesterVpcInfo"]["VpcId"] == network["vpc_id"]
    assert connection["AccepterVpcInfo"]["VpcId"] == vpc_id
    assert connection["AccepterVpcInfo"]["OwnerId"] == CUSTOMER_ACCOUNT
    tags = {t["Key"]: t["Value"] for t in connection["Tags"]}
    assert tags["mqcloud:deployment"] == api.deployment.id
    assert tags["mqcloud:peering"] == peering.id

    body = api.get(f"/api/v1/peerings/{peering.id}").json()
    assert body["status"] == "pending_acceptance"
    assert body["cloud_id"] == peering.cloud_id
    assert body["instructions"]["commands"] == [
        f"aws ec2 accept-vpc-peering-connection --vpc-peering-connection-id {peering.cloud_id} --region us-east-1",
        f"aws ec2 create-route --route-table-id <your-route-table-id> --destination-cidr-block 10.100.0.0/16 "
        f"--vpc-peering-connection-id {peering.cloud_id} --region us-east-1",
    ]
    # Still waiting: nothing changes, the worker looks again soon.
    assert worker.peering_converge_once(peering.id).again_in is not None
    assert Peering.objects.get(pk=peering.id).status == "pending_acceptance"
    assert selectors.active_peering_networks(api.deployment) == []

    # The platform account cannot accept its own request.
    with pytest.raises(ClientError, match="OperationNotPermitted"):
        platform_ec2().accept_vpc_peering_connection(VpcPeeringConnectionId=peering.cloud_id)
    customer_side.play(peering)  # as account 111122223333
    peering = converge(peering.id)
    assert peering.status == "active", peering.status_reason
    assert peering.network_configured_at is not None
    routes = routes_to(CUSTOMER_CIDR, network["route_table_ids"])
    assert len(routes) == 2 and {r["VpcPeeringConnectionId"] for r in routes} == {peering.cloud_id}
    assert ingress_from(CUSTOMER_CIDR, network["security_group_id"]) == {1883, 8883, 8083, 8084}
    assert selectors.active_peering_networks(api.deployment) == [ipaddress.ip_network(CUSTOMER_CIDR)]
    # The reconciler's look at an active peering changes nothing.
    assert converge(peering.id).status == "active"
    assert len(routes_to(CUSTOMER_CIDR, network["route_table_ids"])) == 2

    deleted = api.delete(f"/api/v1/peerings/{peering.id}")
    assert deleted.status_code == 202 and deleted.json()["status"] == "deleting"
    again = api.delete(f"/api/v1/peerings/{peering.id}")
    assert again.status_code == 202 and again.json()["status"] == "deleting"
    peering = converge(peering.id)
    assert peering.status == "deleted"
    assert routes_to(CUSTOMER_CIDR, network["route_table_ids"]) == []
    assert ingress_from(CUSTOMER_CIDR, network["security_group_id"]) == set()
    connection = platform_ec2().describe_vpc_peering_connections(
        VpcPeeringConnectionIds=[peering.cloud_id])["VpcPeeringConnections"][0]
    assert connection["Status"]["Code"] == "deleted"
    assert api.get(f"/api/v1/peerings/{peering.id}").json()["status"] == "deleted"
    assert api.delete(f"/api/v1/peerings/{peering.id}").status_code == 202
    assert api.get(f"/api/v1/deployments/{api.deployment.id}/peerings").json()["results"] == []
    events = api.get(f"/api/v1/peerings/{peering.id}/events").json()["results"]
    assert [e["to_status"] for e in events] == ["pending", "pending_acceptance", "active", "deleting", "deleted"]


def test_rejected_by_the_customer_fails_with_the_clouds_message(api, aws_cloud):
    vpc_id = customer_side.ensure_customer_vpc(CUSTOMER_ACCOUNT, "us-east-1", CUSTOMER_CIDR)
    peering = converge(request_peering(api, vpc_id)["id"])
    customer_side.play(peering, accept=False)
    peering = converge(peering.id)
    assert peering.status == "failed"
    assert peering.status_reason.startswith("AWS: rejected")
    assert routes_to(CUSTOMER_CIDR, aws_cloud["network"]["route_table_ids"]) == []
    # A failed peering can be deleted (its CIDR is already free: test_peering_retry).
    assert api.delete(f"/api/v1/peerings/{peering.id}").status_code == 202
    assert converge(peering.id).status == "deleted"


def test_unaccepted_request_expires_after_seven_days_and_is_withdrawn(api, aws_cloud):
    vpc_id = customer_side.ensure_customer_vpc(CUSTOMER_ACCOUNT, "us-east-1", CUSTOMER_CIDR)
    peering = converge(request_peering(api, vpc_id)["id"])
    with time_machine.travel(timezone.now() + timedelta(days=6, hours=23)):
        assert converge(peering.id).status == "pending_acceptance"
    with time_machine.travel(timezone.now() + timedelta(days=7, minutes=1)):
        assert peering.id in worker.peerings_to_drive()
        peering = converge(peering.id)
    assert peering.status == "expired"
    assert "within 7 days" in peering.status_reason
    connection = platform_ec2().describe_vpc_peering_connections(
        VpcPeeringConnectionIds=[peering.cloud_id])["VpcPeeringConnections"][0]
    assert connection["Status"]["Code"] == "deleted"
    # Accepting an expired (withdrawn) request is refused by AWS.
    with pytest.raises(ClientError):
        customer_side.play(peering)


def test_worker_crash_between_active_and_routes_is_finished_by_the_reconciler(api, aws_cloud, monkeypatch):
    network = aws_cloud["network"]
    vpc_id = customer_side.ensure_customer_vpc(CUSTOMER_ACCOUNT, "us-east-1", CUSTOMER_CIDR)
    peering = converge(request_peering(api, vpc_id)["id"])
    customer_side.play(peering)

    def crash(*args, **kwargs):
        raise SystemExit("worker killed after adding routes")

    # Routes are added, then the worker dies before the security group and before recording anything.
    monkeypatch.setattr(aws, "_ingress", crash)
    with pytest.raises(SystemExit):
        worker.peering_converge_once(peering.id)
    monkeypatch.undo()
    assert Peering.objects.get(pk=peering.id).status == "pending_acceptance"
    assert len(routes_to(CUSTOMER_CIDR, network["route_table_ids"])) == 2

    assert peering.id in worker.peerings_to_drive()
    peering = converge(peering.id)
    assert peering.status == "active"
    assert len(routes_to(CUSTOMER_CIDR, network["route_table_ids"])) == 2  # not duplicated
    assert ingress_from(CUSTOMER_CIDR, network["security_group_id"]) == {1883, 8883, 8083, 8084}


def test_crash_after_the_request_was_created_finds_it_by_tag(api, aws_cloud, monkeypatch):
    vpc_id = customer_side.ensure_customer_vpc(CUSTOMER_ACCOUNT, "us-east-1", CUSTOMER_CIDR)
    created = request_peering(api, vpc_id)

    def crash(*args, **kwargs):
        raise SystemExit("worker killed before saving the connection id")

    monkeypatch.setattr(aws, "advance", crash)
    with pytest.raises(SystemExit):
        worker.peering_converge_once(created["id"])
    monkeypatch.undo()
    peering = converge(created["id"])
    assert peering.status == "pending_acceptance"
    connections = platform_ec2().describe_vpc_peering_connections()["VpcPeeringConnections"]
    assert [c["VpcPeeringConnectionId"] for c in connections] == [peering.cloud_id]  # not requested twice


def test_customer_vpc_that_does_not_exist_fails_with_the_clouds_message(api, aws_cloud):
    peering = converge(request_peering(api, "vpc-0123456789abcdef0")["id"])
    assert peering.status == "failed"
    assert "InvalidVpcID.NotFound" in peering.status_reason
    event = PeeringEvent.objects.filter(peering=peering).latest("created_at")
    assert event.to_status == "failed" and event.details == {"code": "InvalidVpcID.NotFound"}


def test_connection_deleted_in_aws_while_active_removes_routes_and_fails(api, aws_cloud):
    network = aws_cloud["network"]
    vpc_id = customer_side.ensure_customer_vpc(CUSTOMER_ACCOUNT, "us-east-1", CUSTOMER_CIDR)
    peering = converge(request_peering(api, vpc_id)["id"])
    customer_side.play(peering)
    peering = converge(peering.id)
    assert peering.status == "active"
    customer_side.customer_ec2(CUSTOMER_ACCOUNT, "us-east-1").delete_vpc_peering_connection(
        VpcPeeringConnectionId=peering.cloud_id)
    peering = converge(peering.id)
    assert peering.status == "failed"
    assert "deleted" in peering.status_reason
    assert routes_to(CUSTOMER_CIDR, network["route_table_ids"]) == []


@pytest.mark.parametrize(("code", "status", "transient"), [
    ("RequestLimitExceeded", 503, True),
    ("Throttling", 400, True),
    ("InternalError", 500, True),
    ("Unavailable", 503, True),
    ("SomethingNew", 502, True),
    ("InvalidVpcID.NotFound", 400, False),
    ("UnauthorizedOperation", 403, False),
    ("VpcPeeringConnectionAlreadyExists", 400, False),
])
def test_retry_classification(code, status, transient):
    error = ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                        "CreateVpcPeeringConnection")
    assert aws.is_transient(error) is transient
    assert aws.classify(error).transient is transient
    assert aws.classify(error).message == f"AWS: {code}: m"


def test_unreachable_endpoint_is_transient_and_leaves_the_peering_pending(api, aws_cloud, settings):
    vpc_id = customer_side.ensure_customer_vpc(CUSTOMER_ACCOUNT, "us-east-1", CUSTOMER_CIDR)
    created = request_peering(api, vpc_id)
    settings.PEERING_AWS_ENDPOINT_URL = "http://127.0.0.1:9"  # nothing listens on the discard port
    with pytest.raises(worker.CloudError) as caught:
        worker.peering_converge_once(created["id"])
    assert caught.value.transient
    assert Peering.objects.get(pk=created["id"]).status == "pending"
