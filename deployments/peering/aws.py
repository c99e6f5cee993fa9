"""The AWS peering worker: one converge step, through the one EC2 client factory.

The platform VPC of the deployment's region requests a peering to the customer's account/VPC/region; the
customer accepts; once AWS says ``active`` we add routes for the customer CIDR to the platform route tables
and open the broker's security group to it, and only then call the peering ``active``. Every call is
idempotent (found by id or by our tag, "already exists"/"not found" taken as done), so a step that crashed
half-way is simply run again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from django.conf import settings
from django.utils import timezone

from controlplane.workers import Step
from deployments.models import Peering
from deployments.models import PeeringStatus as P
from deployments.peering.network import platform_network
from deployments.peering.steps import CloudError, advance, poll_delay, record_poll, save_fields

TAG_PEERING = "mqcloud:peering"
TAG_DEPLOYMENT = "mqcloud:deployment"
#: Error codes AWS uses for throttling and trouble on its side: retry later.
TRANSIENT_CODES = frozenset({
    "RequestLimitExceeded", "Throttling", "ThrottlingException", "TooManyRequestsException", "SlowDown",
    "EC2ThrottledException", "PriorRequestNotComplete", "RequestTimeout", "RequestTimeoutException",
    "InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable", "RequestExpired",
})
#: States in which a peering connection is gone for good (AWS keeps them visible for a while).
FINISHED_STATES = frozenset({"deleted", "deleting", "rejected", "failed", "expired"})
WAITING_STATES = frozenset({"initiating-request", "pending-acceptance", "provisioning"})


def ec2_client(region_name: str, *, credentials: dict[str, str] | None = None) -> Any:
    """The one EC2 client factory: endpoint and the platform's credentials come from settings.

    ``credentials`` exists for the simulated customer (``customer_side``) only; customers never give us keys.
    """
    options: dict[str, Any] = {
        "region_name": region_name,
        "config": Config(retries={"mode": "standard", "max_attempts": settings.PEERING_AWS_MAX_ATTEMPTS},
                         connect_timeout=5, read_timeout=30),
    }
    if settings.PEERING_AWS_ENDPOINT_URL:
        options["endpoint_url"] = settings.PEERING_AWS_ENDPOINT_URL
    credentials = credentials or {
        key: value for key, value in (("aws_access_key_id", settings.PEERING_AWS_ACCESS_KEY_ID),
                                      ("aws_secret_access_key", settings.PEERING_AWS_SECRET_ACCESS_KEY)) if value
    }
    return boto3.session.Session().client("ec2", **options, **credentials)


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def is_transient(exc: BaseException) -> bool:
    """Retry classification, a pure function of the exception."""
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return error_code(exc) in TRANSIENT_CODES or status >= 500 or status == 429
    return isinstance(exc, BotoConnectionError)


def classify(exc: BaseException) -> CloudError:
    if isinstance(exc, ClientError):
        message = exc.response.get("Error", {}).get("Message", "") or str(exc)
        return CloudError(f"AWS: {error_code(exc)}: {message}", transient=is_transient(exc), code=error_code(exc))
    return CloudError(f"AWS unreachable: {exc}", transient=is_transient(exc))


def step(peering: Peering) -> Step:
    try:
        return _step(peering)
    except (ClientError, BotoCoreError) as exc:
        raise classify(exc) from exc


def _step(peering: Peering) -> Step:
    region = peering.deployment.region
    network = platform_network(region)
    client = ec2_client(region.code)
    if peering.status == P.PENDING:
        return _request(client, peering, network)
    if peering.status == P.PENDING_ACCEPTANCE:
        return _await_acceptance(client, peering, network)
    if peering.status == P.ACTIVE:
        return _check_active(client, peering, network)
    if peering.status == P.DELETING:
        return _delete(client, peering, network)
    return Step(again_in=None, note=f"nothing to do while {peering.status}")


# --- finding our connection -------------------------------------------------------------------------
def describe(client: Any, connection_id: str) -> dict | None:
    try:
        found = client.describe_vpc_peering_connections(VpcPeeringConnectionIds=[connection_id])
    except ClientError as exc:
        if error_code(exc) == "InvalidVpcPeeringConnectionID.NotFound":
            return None
        raise
    return next((c for c in found.get("VpcPeeringConnections", []) if c["VpcPeeringConnectionId"] == connection_id),
                None)


def find_by_tag(client: Any, peering: Peering) -> dict | None:
    """The live connection tagged with this peering, if a previous run created it but crashed before saving."""
    pages = client.get_paginator("describe_vpc_peering_connections").paginate(
        Filters=[{"Name": f"tag:{TAG_PEERING}", "Values": [peering.id]}])
    for page in pages:
        # Filtered again here: not every endpoint (moto) honours the tag filter.
        for connection in page.get("VpcPeeringConnections", []):
            tags = {t["Key"]: t["Value"] for t in connection.get("Tags", [])}
            if tags.get(TAG_PEERING) == peering.id and connection["Status"]["Code"] not in FINISHED_STATES:
                return connection
    return None


# --- steps ------------------------------------------------------------------------------------------
def _request(client: Any, peering: Peering, network: dict) -> Step:
    connection = find_by_tag(client, peering)
    if connection is None:
        deployment = peering.deployment
        connection = client.create_vpc_peering_connection(
            VpcId=network["vpc_id"], PeerOwnerId=peering.account_id, PeerVpcId=peering.vpc_id,
            PeerRegion=peering.peer_region,
            TagSpecifications=[{"ResourceType": "vpc-peering-connection", "Tags": [
                {"Key": "Name", "Value": f"mqcloud {deployment.name} ({deployment.id})"},
                {"Key": TAG_PEERING, "Value": peering.id},
                {"Key": TAG_DEPLOYMENT, "Value": deployment.id},
                {"Key": "mqcloud:organization", "Value": peering.organization_id},
            ]}],
        )["VpcPeeringConnection"]
    now = timezone.now()
    expires_at = now + timedelta(days=settings.PEERING_AWS_ACCEPT_DAYS)
    if connection.get("ExpirationTime"):
        expires_at = min(expires_at, connection["ExpirationTime"])
    advance(peering, P.PENDING_ACCEPTANCE, cloud_id=connection["VpcPeeringConnectionId"],
            cloud_state=connection["Status"]["Code"], requested_at=now, expires_at=expires_at, last_polled_at=now)
    return Step(again_in=settings.PEERING_POLL_SECONDS, note="requested")


def _await_acceptance(client: Any, peering: Peering, network: dict) -> Step:
    if peering.expires_at and timezone.now() >= peering.expires_at:
        # AWS would expire it too, but we promise 7 days and moto never does: withdraw the request ourselves.
        _delete_connection(client, peering.cloud_id)
        advance(peering, P.EXPIRED, cloud_state="expired",
                reason=f"The customer did not accept the peering request within "
                       f"{settings.PEERING_AWS_ACCEPT_DAYS} days; it was withdrawn. Delete this peering and "
                       f"request a new one.")
        return Step(again_in=None, note="expired")
    connection = describe(client, peering.cloud_id)
    if connection is None:
        advance(peering, P.FAILED, reason=f"The peering connection {peering.cloud_id} no longer exists in AWS.")
        return Step(again_in=None, note="gone")
    code, message = connection["Status"]["Code"], connection["Status"].get("Message", "")
    record_poll(peering, code)
    if code in WAITING_STATES:
        return Step(again_in=poll_delay(peering), note=code)
    if code == "active":
        configure_network(client, peering, network)
        advance(peering, P.ACTIVE, network_configured_at=timezone.now(), cloud_state=code)
        return Step(again_in=None, note="active")
    if code == "expired":
        advance(peering, P.EXPIRED, cloud_state=code, reason=f"AWS expired the request: {message or code}.")
        return Step(again_in=None, note=code)
    if code in ("rejected", "failed"):
        advance(peering, P.FAILED, cloud_state=code, reason=f"AWS: {code}: {message or 'no message'}")
        return Step(again_in=None, note=code)
    advance(peering, P.FAILED, cloud_state=code,
            reason=f"The peering connection is {code} in AWS ({message or 'no message'}); it was removed outside "
                   f"mqcloud. Delete this peering and request a new one.")
    return Step(again_in=None, note=code)


def _check_active(client: Any, peering: Peering, network: dict) -> Step:
    """The reconciler's look at a settled peering: still active in AWS? routes still there?"""
    connection = describe(client, peering.cloud_id)
    code = connection["Status"]["Code"] if connection else "deleted"
    if code == "active":
        configure_network(client, peering, network)
        if peering.network_configured_at is None:
            save_fields(peering, network_configured_at=timezone.now())
        return Step(again_in=None, note="active")
    remove_network(client, peering, network)
    message = connection["Status"].get("Message", "") if connection else "not found"
    advance(peering, P.FAILED, cloud_state=code,
            reason=f"The peering connection is {code} in AWS ({message}); routes to {peering.cidr} were removed. "
                   f"Delete this peering and request a new one.")
    return Step(again_in=None, note=code)


def _delete(client: Any, peering: Peering, network: dict) -> Step:
    connection_id = peering.cloud_id
    if not connection_id:
        found = find_by_tag(client, peering)  # created just before a crash, never recorded
        connection_id = found["VpcPeeringConnectionId"] if found else ""
    if connection_id:
        remove_network(client, peering, network, connection_id=connection_id)
        connection = describe(client, connection_id)
        if connection is not None and connection["Status"]["Code"] not in FINISHED_STATES:
            _delete_connection(client, connection_id)
    advance(peering, P.DELETED, reason="deleted", cloud_state="deleted")
    return Step(again_in=None, note="deleted")


def _delete_connection(client: Any, connection_id: str) -> None:
    if not connection_id:
        return
    try:
        client.delete_vpc_peering_connection(VpcPeeringConnectionId=connection_id)
    except ClientError as exc:
        if error_code(exc) not in ("InvalidVpcPeeringConnectionID.NotFound", "InvalidStateTransition"):
            raise


# --- platform side: routes and security group --------------------------------------------------------
def _ingress(peering: Peering) -> list[dict]:
    return [{"IpProtocol": "tcp", "FromPort": port, "ToPort": port,
             "IpRanges": [{"CidrIp": peering.cidr, "Description": f"mqcloud peering {peering.id}"}]}
            for port in settings.PEERING_BROKER_PORTS]


def configure_network(client: Any, peering: Peering, network: dict) -> None:
    """Routes to the customer CIDR through the peering, and the broker ports open to it. Idempotent."""
    for route_table_id in network.get("route_table_ids", []):
        route = {"RouteTableId": route_table_id, "DestinationCidrBlock": peering.cidr,
                 "VpcPeeringConnectionId": peering.cloud_id}
        try:
            client.create_route(**route)
        except ClientError as exc:
            if error_code(exc) != "RouteAlreadyExists":
                raise
            client.replace_route(**route)  # a stale route (of an old peering) must point at this one
    if network.get("security_group_id"):
        for permission in _ingress(peering):
            try:
                client.authorize_security_group_ingress(GroupId=network["security_group_id"],
                                                        IpPermissions=[permission])
            except ClientError as exc:
                if error_code(exc) != "InvalidPermission.Duplicate":
                    raise


def remove_network(client: Any, peering: Peering, network: dict, *, connection_id: str = "") -> None:
    """Undo :func:`configure_network`; only routes through our own connection are removed. Idempotent."""
    connection_id = connection_id or peering.cloud_id
    route_table_ids = list(network.get("route_table_ids", []))
    if route_table_ids and connection_id:
        tables = client.describe_route_tables(RouteTableIds=route_table_ids)["RouteTables"]
        for table in tables:
            for route in table.get("Routes", []):
                if (route.get("DestinationCidrBlock") == peering.cidr
                        and route.get("VpcPeeringConnectionId") == connection_id):
                    try:
                        client.delete_route(RouteTableId=table["RouteTableId"], DestinationCidrBlock=peering.cidr)
                    except ClientError as exc:
                        if error_code(exc) != "InvalidRoute.NotFound":
                            raise
    if network.get("security_group_id"):
        for permission in _ingress(peering):
            try:
                client.revoke_security_group_ingress(GroupId=network["security_group_id"],
                                                     IpPermissions=[permission])
            except ClientError as exc:
                if error_code(exc) not in ("InvalidPermission.NotFound",):
                    raise
