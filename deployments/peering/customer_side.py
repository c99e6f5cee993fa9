"""The customer's side of a peering, played against the simulated clouds (embedded default and tests).

AWS: assume a role in the customer's account (moto gives credentials of that account) and accept (or
reject) the request; Azure: create the reverse VNet peering in the customer's subscription. Never used
against real clouds: ``settings.PEERING_SIMULATED_CUSTOMER`` is off in production.
"""

from __future__ import annotations

from typing import Any

import boto3
from azure.mgmt.network.models import SubResource, VirtualNetworkPeering
from django.conf import settings

from deployments.models import Peering, Provider
from deployments.peering import aws, azure
from deployments.peering.network import platform_network

CUSTOMER_ROLE = "mqcloud-simulated-customer"
REVERSE_PEERING_NAME = "to-mqcloud"


def customer_credentials(account_id: str) -> dict[str, str]:
    options: dict[str, Any] = {"region_name": "us-east-1"}
    if settings.PEERING_AWS_ENDPOINT_URL:
        options["endpoint_url"] = settings.PEERING_AWS_ENDPOINT_URL
    for key, value in (("aws_access_key_id", settings.PEERING_AWS_ACCESS_KEY_ID),
                       ("aws_secret_access_key", settings.PEERING_AWS_SECRET_ACCESS_KEY)):
        if value:
            options[key] = value
    sts = boto3.session.Session().client("sts", **options)
    assumed = sts.assume_role(RoleArn=f"arn:aws:iam::{account_id}:role/{CUSTOMER_ROLE}",
                              RoleSessionName="simulated-customer")["Credentials"]
    return {"aws_access_key_id": assumed["AccessKeyId"], "aws_secret_access_key": assumed["SecretAccessKey"],
            "aws_session_token": assumed["SessionToken"]}


def customer_ec2(account_id: str, region: str) -> Any:
    return aws.ec2_client(region, credentials=customer_credentials(account_id))


def ensure_customer_vpc(account_id: str, region: str, cidr: str) -> str:
    """A VPC with ``cidr`` in the customer's account (created once), for trying the flow locally."""
    ec2 = customer_ec2(account_id, region)
    for vpc in ec2.describe_vpcs()["Vpcs"]:
        if vpc["CidrBlock"] == cidr:
            return vpc["VpcId"]
    return ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]


def play(peering: Peering, *, accept: bool = True) -> str:
    if peering.provider == Provider.AWS:
        if not peering.cloud_id:
            return "No peering request exists yet; wait until the status is pending_acceptance."
        ec2 = customer_ec2(peering.account_id, peering.peer_region)
        if accept:
            ec2.accept_vpc_peering_connection(VpcPeeringConnectionId=peering.cloud_id)
            return f"Accepted {peering.cloud_id} as account {peering.account_id}."
        ec2.reject_vpc_peering_connection(VpcPeeringConnectionId=peering.cloud_id)
        return f"Rejected {peering.cloud_id} as account {peering.account_id}."
    client = azure.network_client(peering.subscription_id)
    platform_vnet_id = platform_network(peering.deployment.region)["vnet_id"]
    client.virtual_network_peerings.begin_create_or_update(
        peering.resource_group, peering.vnet_name, REVERSE_PEERING_NAME,
        VirtualNetworkPeering(remote_virtual_network=SubResource(id=platform_vnet_id),
                              allow_virtual_network_access=True),
    ).result()
    return f"Created the reverse peering {REVERSE_PEERING_NAME} on {peering.vnet_name}."
