"""What the customer must do on their side, with the exact commands filled in."""

from __future__ import annotations

from deployments.models import Peering, Provider
from deployments.models import PeeringStatus as P
from deployments.peering.azure import our_peering_name
from deployments.peering.network import platform_network

#: States in which nothing on the customer's side moves the peering on: it failed, expired or is going away.
NOTHING_TO_DO = frozenset({P.FAILED, P.EXPIRED, P.DELETING, P.DELETED})


def instructions(peering: Peering) -> dict:
    network = platform_network(peering.deployment.region)
    platform_cidr = network.get("cidr", "")
    if peering.provider == Provider.AWS:
        result = _aws(peering, platform_cidr)
    else:
        result = _azure(peering, network.get("vnet_id", ""), platform_cidr)
    if peering.status in NOTHING_TO_DO:
        # Commands to accept a request that failed or is gone would only fail again on the customer's side.
        result["commands"] = []
        result["steps"] = [_settled_step(peering)]
    return result


def _settled_step(peering: Peering) -> str:
    if peering.status == P.FAILED:
        return ("Nothing to do on your side now. Fix what the reason above says (e.g. the VPC or account id), "
                "then retry the request or delete it.")
    if peering.status == P.EXPIRED:
        return "The request expired unaccepted. Delete this peering and request a new one."
    return "The peering is being removed; nothing to do on your side."


def _with_ids(*commands: tuple[str, tuple[str, ...]]) -> list[str]:
    """The commands whose ids are all known: one with an empty id would look runnable and fail."""
    return [command for command, ids in commands if all(ids)]


def _aws(peering: Peering, platform_cidr: str) -> dict:
    pcx = peering.cloud_id
    result: dict = {"provider": "aws", "peering_connection_id": pcx or None, "platform_cidr": platform_cidr,
                    "region": peering.peer_region, "commands": [], "steps": []}
    if peering.status == P.PENDING:
        result["steps"] = ["The peering request is being created; its id and the commands appear here shortly."]
        return result
    accept = f"aws ec2 accept-vpc-peering-connection --vpc-peering-connection-id {pcx} --region {peering.peer_region}"
    route = (f"aws ec2 create-route --route-table-id <your-route-table-id> --destination-cidr-block {platform_cidr} "
             f"--vpc-peering-connection-id {pcx} --region {peering.peer_region}")
    result["commands"] = _with_ids((accept, (pcx, peering.peer_region)), (route, (pcx, platform_cidr)))
    result["steps"] = [
        f"In account {peering.account_id}, accept the peering request {pcx} (VPC console → Peering connections, "
        f"region {peering.peer_region}) within 7 days of the request, or run the first command.",
        f"Route {platform_cidr} through {pcx} in each route table of {peering.vpc_id} that your clients and "
        f"services use (second command, once per route table).",
        "Allow traffic from the broker's network to your services (e.g. your HTTP authentication endpoint) in "
        "their security groups.",
    ]
    return result


def _azure(peering: Peering, platform_vnet_id: str, platform_cidr: str) -> dict:
    command = (f"az network vnet peering create --name {our_peering_name(peering)} "
               f"--resource-group {peering.resource_group} --vnet-name {peering.vnet_name} "
               f"--remote-vnet {platform_vnet_id} --allow-vnet-access --subscription {peering.subscription_id}")
    return {
        "provider": "azure", "platform_vnet_id": platform_vnet_id, "platform_cidr": platform_cidr,
        "commands": _with_ids((command, (platform_vnet_id, peering.resource_group, peering.vnet_name))),
        "steps": [
            f"Create the reverse peering from your VNet {peering.vnet_name} (resource group {peering.resource_group}, "
            f"subscription {peering.subscription_id}) to our VNet {platform_vnet_id}, with the command below or in "
            f"the portal (Virtual networks → {peering.vnet_name} → Peerings → Add).",
            f"Your account needs the 'Network Contributor' role on your VNet; the peering becomes active as soon "
            f"as Azure reports it Connected. Traffic to {platform_cidr} then flows through it.",
        ],
    }
