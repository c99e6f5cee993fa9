"""The platform network of a region, as the peering workers see it, and the simulated customer's network."""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings

from deployments.models import Provider, Region
from deployments.peering.demo import DEMO_CUSTOMER_KEY  # where cloudsim records the demo customer's VPC

#: The simulated customer's VNet on Azure. The Azure stand-in peers any VNet, so these need creating nowhere.
DEMO_AZURE_CUSTOMER = {
    "tenant_id": "00000000-0000-4000-8000-00000000c0de", "subscription_id": "00000000-0000-4000-8000-0000000c0ffe",
    "resource_group": "demo-customer", "vnet_name": "demo-customer-vnet", "cidr": "10.30.0.0/16",
}


def _override(key: str) -> dict:
    """The simulated clouds' entry ``key``: from the file ``deployments.cloudsim`` wrote, then the inline setting."""
    entry: dict = {}
    path = getattr(settings, "PEERING_PLATFORM_NETWORKS_FILE", "")
    if path and Path(path).is_file():
        entry.update(json.loads(Path(path).read_text()).get(key, {}))
    entry.update(getattr(settings, "PEERING_PLATFORM_NETWORKS", {}).get(key, {}))
    return entry


def platform_network(region: Region) -> dict:
    """``region.network`` from the catalog, with per-region overrides from settings.

    Overrides exist for the simulated clouds: moto cannot create a VPC with a chosen id, so the embedded
    default (``deployments.cloudsim``) and the tests create the platform network there and point the
    settings at the ids they got. Production uses the catalog as it is.
    """
    return {**(region.network or {}), **_override(region.id)}


def simulated_customer(region: Region) -> dict[str, str] | None:
    """The simulated customer's network, for the peering form to offer as a one-click fill; None unless the
    region's cloud is simulated (``make run``, the tests). Production never simulates: there
    ``PEERING_SIMULATED_CUSTOMER`` is always off and AWS has no endpoint override."""
    if not settings.PEERING_SIMULATED_CUSTOMER:
        return None
    if region.provider == Provider.AZURE:
        return dict(DEMO_AZURE_CUSTOMER) if settings.PEERING_AZURE_SIMULATED else None
    demo = _override(DEMO_CUSTOMER_KEY)
    if not settings.PEERING_AWS_ENDPOINT_URL or not demo.get("vpc_id"):
        return None  # real AWS, or the simulated cloud has not made the customer's VPC (cloudsim not started)
    return {"account_id": demo["account_id"], "vpc_id": demo["vpc_id"], "region": demo["region"],
            "cidr": demo["cidr"]}
