"""The cluster registry: one Kubernetes API client per region.

Where a region's cluster is comes from settings, in this order:
1. ``KUBERNETES_CLUSTERS[region_id]``: ``{"kubeconfig": path, "context": name}`` or ``{"in_cluster": True}``;
2. ``KUBERNETES_SIMULATOR_URL``: every region is served by the simulated cluster (embedded default, tests).

Each cluster's client is rate-limited on our side, like client-go: ``KUBERNETES_CLIENT_QPS`` requests a second
with bursts of ``KUBERNETES_CLIENT_BURST`` (per worker process; ``qps``/``burst`` in a cluster's entry override
them; a QPS of 0 is no limit).
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from kubernetes import client, config

from k8s.observer import ClusterWatch

_lock = threading.Lock()
_clients: dict[tuple, client.ApiClient] = {}
_watches: dict[tuple, ClusterWatch] = {}


class ClusterNotConfigured(Exception):
    pass


def _cluster_settings(region_id: str) -> tuple:
    clusters: dict = getattr(settings, "KUBERNETES_CLUSTERS", {}) or {}
    entry = clusters.get(region_id) or {}
    if entry.get("in_cluster"):
        return ("in_cluster",)
    if entry.get("kubeconfig"):
        return ("kubeconfig", entry["kubeconfig"], entry.get("context"))
    simulator_url = getattr(settings, "KUBERNETES_SIMULATOR_URL", "")
    if simulator_url:
        return ("simulator", simulator_url)
    raise ClusterNotConfigured(f"No Kubernetes cluster is configured for region {region_id}.")


class TokenBucket:
    """client-go's client-side rate limit (``flowcontrol.NewTokenBucketRateLimiter``): ``qps`` requests a
    second on average, up to ``burst`` at once after a quiet spell; a caller over the rate waits its turn.
    ``qps`` of 0 is no limit. Thread-safe: a worker process's threads share their cluster's bucket."""

    def __init__(self, qps: float, burst: int, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.qps, self.burst = qps, max(1, burst)
        self._clock, self._sleep = clock, sleep
        self._tokens, self._at = float(self.burst), clock()
        self._held_until = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Takes one token, waiting for it if there is none (or while the cluster asked us to hold); returns
        the seconds waited."""
        with self._lock:
            now = self._clock()
            wait = max(0.0, self._held_until - now)
            if self.qps > 0:
                self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.qps)
                self._at = now
                self._tokens -= 1  # reserved now; a negative balance is the queue of callers before this one
                if self._tokens < 0:
                    wait = max(wait, -self._tokens / self.qps)
        if wait:
            self._sleep(wait)
        return wait

    def hold(self, seconds: float) -> None:
        """Nobody sends before ``seconds`` from now: the cluster answered "too many requests, retry after".
        A hold only ever lengthens (two throttled callers must not shorten each other's wait)."""
        with self._lock:
            self._held_until = max(self._held_until, self._clock() + max(0.0, seconds))

    def held_for(self) -> float:
        with self._lock:
            return max(0.0, self._held_until - self._clock())


class ThrottledApiClient(client.ApiClient):
    """An API client whose every request first takes a token from its cluster's bucket, so a storm of work
    (a thousand deployments converging at once) cannot overload the API server."""

    def __init__(self, configuration: client.Configuration, bucket: TokenBucket) -> None:
        super().__init__(configuration)
        self.bucket = bucket

    def call_api(self, *args: Any, **kwargs: Any) -> Any:
        for attempt in range(THROTTLED_RETRIES + 1):
            self.bucket.acquire()
            try:
                return super().call_api(*args, **kwargs)
            except client.ApiException as error:
                delay = _retry_after(error)
                if delay is None:
                    raise
                self.bucket.hold(delay)
                if attempt == THROTTLED_RETRIES or delay > THROTTLED_WAIT_MAX_SECONDS:
                    raise
        raise AssertionError("unreachable")  # the loop returns or raises


# client-go retries a throttled request up to 10 times; a worker step is shorter-lived, so a few short holds
# are waited out here and anything longer goes back to the worker's own retry with backoff.
THROTTLED_RETRIES = 3
THROTTLED_WAIT_MAX_SECONDS = 10.0


def _retry_after(error: client.ApiException) -> float | None:
    """The seconds a 429 or 503 answer asked us to wait (its Retry-After header), else None."""
    if error.status not in (429, 503) or not error.headers:
        return None
    try:
        return max(0.0, float(error.headers.get("Retry-After", "")))
    except ValueError:  # an HTTP date, or garbage: not worth parsing, the worker's backoff covers it
        return None


def _bucket(region_id: str) -> TokenBucket:
    entry = (getattr(settings, "KUBERNETES_CLUSTERS", {}) or {}).get(region_id) or {}
    return TokenBucket(float(entry.get("qps", getattr(settings, "KUBERNETES_CLIENT_QPS", 50))),
                       int(entry.get("burst", getattr(settings, "KUBERNETES_CLIENT_BURST", 100))))


def _build(key: tuple, bucket: TokenBucket) -> client.ApiClient:
    kind = key[0]
    configuration = client.Configuration()
    if kind == "in_cluster":
        config.load_incluster_config(client_configuration=configuration)
    elif kind == "kubeconfig":
        config.load_kube_config(config_file=key[1], context=key[2], client_configuration=configuration)
    else:
        configuration.host = key[1]
        # The client retries connection errors itself three times by default; our workers retry with
        # backoff instead, so a failing cluster does not hold a worker for long.
        configuration.retries = 0
    return ThrottledApiClient(configuration, bucket)


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
            api_client = _clients[key] = _build(key, _bucket(region_id))
        return api_client


def watch_for_region(region_id: str) -> ClusterWatch | None:
    """The watch cache of the region's cluster (started on first use), or None when ``KUBERNETES_WATCH_CACHE``
    is off: then every observation is a GET."""
    if not getattr(settings, "KUBERNETES_WATCH_CACHE", False):
        return None
    key = _cluster_settings(region_id)
    api_client = api_client_for_region(region_id)
    with _lock:
        cache = _watches.get(key)
        if cache is None:
            cache = _watches[key] = ClusterWatch(api_client).start()
        return cache


def forget_clients() -> None:
    """Drops cached clients and watches (settings changed, e.g. a test started its own simulated cluster)."""
    with _lock:
        for cache in _watches.values():
            cache.stop()
        _watches.clear()
        for api_client in _clients.values():
            api_client.close()
        _clients.clear()
