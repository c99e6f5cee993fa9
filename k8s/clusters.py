"""The cluster registry: one Kubernetes API client per region.

Where a region's cluster is comes from settings, in this order:
1. ``KUBERNETES_CLUSTERS[region_id]``: ``{"kubeconfig": path, "context": name}`` or ``{"in_cluster": True}``;
2. ``KUBERNETES_SIMULATOR_URL``: every region is served by the simulated cluster (embedded default, tests).
"""

from __future__ import annotations

import ipaddress
import threading

from django.conf import settings
from kubernetes import client, config

_lock = threading.Lock()
_clients: dict[tuple, client.ApiClient] = {}


class ClusterNotConfigured(Exception):
    pass


def _cluster_settings(region_id: str) -> tuple:
    clusters: dict = getattr(settings, "KUBERNETES_CLUSTERS", {}) or {}
    entry = clusters.get(region_id)
    if entry:
        if entry.get("in_cluster"):
            return ("in_cluster",)
        return ("kubeconfig", entry["kubeconfig"], entry.get("context"))
    simulator_url = getattr(settings, "KUBERNETES_SIMULATOR_URL", "")
    if simulator_url:
        return ("simulator", simulator_url)
    raise ClusterNotConfigured(f"No Kubernetes cluster is configured for region {region_id}.")


def _build(key: tuple) -> client.ApiClient:
    kind = key[0]
    if kind == "in_cluster":
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return client.ApiClient(configuration)
    if kind == "kubeconfig":
        return config.new_client_from_config(config_file=key[1], context=key[2])
    configuration = client.Configuration()
    configuration.host = key[1]
    # The client retries connection errors itself three times by default; our workers retry with
    # backoff instead, so a failing cluster does not hold a worker for long.
    configuration.retries = 0
    return client.ApiClient(configuration)


def cluster_cidrs(region_id: str) -> tuple[str, ...]:
    """The pod and service ranges of the region's cluster: its ``cluster_cidrs`` in ``KUBERNETES_CLUSTERS``,
    else ``KUBERNETES_CLUSTER_CIDRS``. A value that is not a CIDR fails loudly (a typo would open the range)."""
    entry = (getattr(settings, "KUBERNETES_CLUSTERS", {}) or {}).get(region_id) or {}
    values = entry.get("cluster_cidrs") or getattr(settings, "KUBERNETES_CLUSTER_CIDRS", [])
    try:
        return tuple(str(ipaddress.ip_network(value)) for value in values)
    except ValueError as exc:
        raise ClusterNotConfigured(f"A cluster CIDR of region {region_id} is not valid: {exc}.") from exc


def secret_key() -> bytes:
    """The control plane's secret key (Django's ``SECRET_KEY``): keys the hashes we annotate objects with."""
    return settings.SECRET_KEY.encode()


def api_client_for_region(region_id: str) -> client.ApiClient:
    key = _cluster_settings(region_id)
    with _lock:
        api_client = _clients.get(key)
        if api_client is None:
            api_client = _clients[key] = _build(key)
        return api_client


def forget_clients() -> None:
    """Drops cached clients (settings changed, e.g. a test started its own simulated cluster)."""
    with _lock:
        for api_client in _clients.values():
            api_client.close()
        _clients.clear()
