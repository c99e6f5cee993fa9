"""The platform network of a region, as the peering workers see it."""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings

from deployments.models import Region


def platform_network(region: Region) -> dict:
    """``region.network`` from the catalog, with per-region overrides from settings.

    Overrides exist for the simulated clouds: moto cannot create a VPC with a chosen id, so the embedded
    default (``deployments.cloudsim``) and the tests create the platform network there and point the
    settings at the ids they got. Production uses the catalog as it is.
    """
    network = dict(region.network or {})
    path = getattr(settings, "PEERING_PLATFORM_NETWORKS_FILE", "")
    if path and Path(path).is_file():
        network.update(json.loads(Path(path).read_text()).get(region.id, {}))
    network.update(getattr(settings, "PEERING_PLATFORM_NETWORKS", {}).get(region.id, {}))
    return network
