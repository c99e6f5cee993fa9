"""The k8s app's facade: apply a broker cluster, observe it, delete it. Other apps call only these.

Every write is a server-side apply with field manager ``mqcloud`` and ``force=True``: we own the
fields we render, so a hand edit of one of them is overwritten on the next apply (drift repair), and
re-applying an unchanged object is a no-op on the API server.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from k8s.clusters import api_client_for_region, cluster_cidrs, watch_for_region
from k8s.drift import ClusterIndex, applied_hash, contains, stamped
from k8s.render import BrokerClusterSpec, render

FIELD_MANAGER = "mqcloud"
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
REQUEST_TIMEOUT = (5, 30)  # connect, read (seconds)

# kind → (typed API class, patch method, namespaced?)
_KINDS: dict[str, tuple[type, str, bool]] = {
    "Namespace": (client.CoreV1Api, "patch_namespace", False),
    "ResourceQuota": (client.CoreV1Api, "patch_namespaced_resource_quota", True),
    "NetworkPolicy": (client.NetworkingV1Api, "patch_namespaced_network_policy", True),
    "ConfigMap": (client.CoreV1Api, "patch_namespaced_config_map", True),
    "Secret": (client.CoreV1Api, "patch_namespaced_secret", True),
    "Service": (client.CoreV1Api, "patch_namespaced_service", True),
    "PodDisruptionBudget": (client.PolicyV1Api, "patch_namespaced_pod_disruption_budget", True),
    "StatefulSet": (client.AppsV1Api, "patch_namespaced_stateful_set", True),
}

#: Kubernetes answers that are worth retrying: conflicts, throttling, server trouble.
RETRYABLE_STATUSES = frozenset({409, 429, 500, 502, 503, 504})


class KubernetesError(Exception):
    def __init__(self, message: str, *, status: int | None = None, retryable: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


def _translate(exc: Exception, what: str) -> KubernetesError:
    if isinstance(exc, ApiException):
        reason = exc.reason
        try:
            reason = json.loads(exc.body or "{}").get("message") or reason
        except (ValueError, AttributeError):
            pass
        retryable = exc.status in RETRYABLE_STATUSES or exc.status == 0
        return KubernetesError(f"{what}: {exc.status} {reason}", status=exc.status, retryable=retryable)
    return KubernetesError(f"{what}: {type(exc).__name__}: {exc}", retryable=True)


def _call(
    what: str, method: Callable[..., Any], *args: Any, tolerate: tuple[int, ...] = (), **kwargs: Any
) -> tuple[int, dict | None]:
    """Calls a typed client method; returns (200, body) or (status, None) for a tolerated status."""
    try:
        response = method(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs)
    except ApiException as exc:
        if exc.status in tolerate:
            return exc.status, None
        raise _translate(exc, what) from exc
    except Exception as exc:  # urllib3 connection errors, timeouts...
        raise _translate(exc, what) from exc
    return 200, json.loads(response.data or b"{}")


def cluster_internal_cidrs(*, region_id: str) -> tuple[str, ...]:
    """The pod and service ranges of the region's cluster (settings), for the brokers' egress policy."""
    return cluster_cidrs(region_id)


@dataclass
class ApplyReport:
    objects: list[str] = field(default_factory=list)
    api_calls: int = 0
    #: ``kind/name`` → applied-hash of every object of the cluster as it now stands (applied or unchanged).
    hashes: dict[str, str] = field(default_factory=dict)


def _object_key(obj: dict) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def apply_broker_cluster(*, region_id: str, spec: BrokerClusterSpec,
                         applied: dict[str, str] | None = None) -> ApplyReport:
    """Applies the cluster's objects, in order: every one, or with ``applied`` (``ApplyReport.hashes`` of the
    last apply) only those whose rendering changed since. Raises KubernetesError (``retryable`` tells)."""
    objects = render(spec)
    hashes = {_object_key(obj): applied_hash(obj) for obj in objects}
    if applied is not None:
        objects = [obj for obj in objects if applied.get(_object_key(obj)) != hashes[_object_key(obj)]]
    report = _apply(region_id, objects)
    report.hashes = hashes
    return report


def drifted_objects(*, spec: BrokerClusterSpec, observed: ClusterIndex) -> list[dict]:
    """The cluster's rendered objects that ``observed`` lacks or that differ from what we render (a hand edit,
    a hand delete, or a change of ours)."""
    return [obj for obj in render(spec) if observed.drifted(obj)]


def repair_broker_cluster(*, region_id: str, spec: BrokerClusterSpec, observed: ClusterIndex) -> ApplyReport:
    """Applies only ``drifted_objects``: an unchanged cluster costs no call at all."""
    return _apply(region_id, drifted_objects(spec=spec, observed=observed))


def _apply(region_id: str, objects: list[dict]) -> ApplyReport:
    api_client = api_client_for_region(region_id)
    report = ApplyReport()
    for obj in objects:
        obj = stamped(obj)
        api_class, method, namespaced = _KINDS[obj["kind"]]
        patch: Callable = getattr(api_class(api_client), method)
        name = obj["metadata"]["name"]
        args = (name, obj["metadata"]["namespace"], obj) if namespaced else (name, obj)
        label = f"apply {obj['kind']} {obj['metadata'].get('namespace', '')}/{name}"
        _call(label, patch, *args, field_manager=FIELD_MANAGER, force=True, _content_type=APPLY_CONTENT_TYPE)
        report.api_calls += 1
        report.objects.append(_object_key(obj))
    return report


@dataclass(frozen=True)
class ObservedCluster:
    exists: bool
    desired_replicas: int = 0
    ready_replicas: int = 0
    updated_replicas: int = 0
    generation: int = 0
    observed_generation: int = 0
    current_revision: str = ""
    update_revision: str = ""
    resources: dict = field(default_factory=dict)
    load_balancer_host: str = ""
    current: bool = True  # False: a cached StatefulSet older than what was just applied

    @property
    def rolled_out(self) -> bool:
        """The controller has seen the latest spec and every desired pod runs it and is ready."""
        return (
            self.exists
            and self.current
            and self.observed_generation >= self.generation
            and self.ready_replicas == self.desired_replicas
            and self.updated_replicas == self.desired_replicas
            and (not self.update_revision or self.current_revision == self.update_revision)
        )


def observe_broker_cluster(*, region_id: str, namespace: str, name: str,
                           desired: BrokerClusterSpec | None = None) -> ObservedCluster:
    """The cluster's rollout and address: from the region's watch cache when it is synced (no API call), else
    two GETs. With ``desired``, a cached StatefulSet that does not hold yet what was just applied (its event
    is on the way) is ``current=False``: not rolled out, whatever its status says."""
    cache = watch_for_region(region_id)
    if cache is not None and cache.synced:
        sts = cache.get("StatefulSet", namespace, name)
        svc = cache.get("Service", namespace, f"{name}-public")
        current = True
        if sts is not None and desired is not None:
            rendered = next(obj for obj in render(desired) if obj["kind"] == "StatefulSet")
            current = contains(sts, rendered)
        return _observed(sts, svc, current=current)
    api_client = api_client_for_region(region_id)
    apps = client.AppsV1Api(api_client)
    core = client.CoreV1Api(api_client)
    _, sts = _call(f"read StatefulSet {namespace}/{name}", apps.read_namespaced_stateful_set, name,
                   namespace, tolerate=(404,))
    if sts is None:
        return ObservedCluster(exists=False)
    _, svc = _call(f"read Service {namespace}/{name}-public", core.read_namespaced_service, f"{name}-public",
                   namespace, tolerate=(404,))
    return _observed(sts, svc)


def _observed(sts: dict | None, svc: dict | None, *, current: bool = True) -> ObservedCluster:
    if sts is None:
        return ObservedCluster(exists=False)
    spec, status = sts.get("spec", {}), sts.get("status", {})
    container = (spec.get("template", {}).get("spec", {}).get("containers") or [{}])[0]
    ingress = ((svc or {}).get("status", {}).get("loadBalancer", {}).get("ingress") or [{}])[0]
    host = ingress.get("hostname") or ingress.get("ip") or ""
    return ObservedCluster(
        exists=True,
        desired_replicas=int(spec.get("replicas") or 0),
        ready_replicas=int(status.get("readyReplicas") or 0),
        updated_replicas=int(status.get("updatedReplicas") or 0),
        generation=int(sts.get("metadata", {}).get("generation") or 0),
        observed_generation=int(status.get("observedGeneration") or 0),
        current_revision=status.get("currentRevision") or "",
        update_revision=status.get("updateRevision") or "",
        resources=container.get("resources", {}).get("limits", {}),
        load_balancer_host=host,
        current=current,
    )


# kind → (typed API class, the method listing it across namespaces)
_LISTS: dict[str, tuple[type, str]] = {
    "Namespace": (client.CoreV1Api, "list_namespace"),
    "ResourceQuota": (client.CoreV1Api, "list_resource_quota_for_all_namespaces"),
    "NetworkPolicy": (client.NetworkingV1Api, "list_network_policy_for_all_namespaces"),
    "ConfigMap": (client.CoreV1Api, "list_config_map_for_all_namespaces"),
    "Secret": (client.CoreV1Api, "list_secret_for_all_namespaces"),
    "Service": (client.CoreV1Api, "list_service_for_all_namespaces"),
    "PodDisruptionBudget": (client.PolicyV1Api, "list_pod_disruption_budget_for_all_namespaces"),
    "StatefulSet": (client.AppsV1Api, "list_stateful_set_for_all_namespaces"),
}
MANAGED_SELECTOR = "app.kubernetes.io/managed-by=mqcloud"


def observe_region(*, region_id: str) -> ClusterIndex:
    """Everything of ours in the region's cluster: one LIST per kind (by our label), whatever the number of
    deployments, for ``repair_broker_cluster`` to compare against."""
    api_client = api_client_for_region(region_id)
    index = ClusterIndex()
    for kind, (api_class, method) in _LISTS.items():
        _, body = _call(f"list {kind}", getattr(api_class(api_client), method), label_selector=MANAGED_SELECTOR)
        index.add(kind, (body or {}).get("items") or [])
        index.api_calls += 1
    return index


def delete_broker_cluster(*, region_id: str, namespace: str) -> bool:
    """Starts deleting the namespace (and so everything in it). Returns True once it is gone."""
    core = client.CoreV1Api(api_client_for_region(region_id))
    # 409: already terminating, which is what we asked for.
    status_code, _ = _call(f"delete Namespace {namespace}", core.delete_namespace, namespace,
                           propagation_policy="Foreground", tolerate=(404, 409))
    if status_code == 404:
        return True
    status_code, _ = _call(f"read Namespace {namespace}", core.read_namespace, namespace, tolerate=(404,))
    return status_code == 404


@dataclass(frozen=True)
class ObservedPod:
    name: str
    ordinal: int
    image: str
    ready: bool
    terminating: bool


def observe_broker_pods(*, region_id: str, namespace: str, name: str) -> dict[int, ObservedPod]:
    """The broker's pods by ordinal, with the image each runs and whether it is Ready: what a rolling upgrade
    checks node by node (the StatefulSet's counters cannot say *which* node runs what)."""
    core = client.CoreV1Api(api_client_for_region(region_id))
    # The namespace is the deployment's own: its pods are the broker's.
    _, body = _call(f"list Pods {namespace}", core.list_namespaced_pod, namespace)
    pods: dict[int, ObservedPod] = {}
    for pod in (body or {}).get("items") or []:
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        pod_name = meta.get("name") or ""
        prefix, _, ordinal = pod_name.rpartition("-")
        if prefix != name or not ordinal.isdigit():
            continue
        containers = (pod.get("spec") or {}).get("containers") or [{}]
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        pods[int(ordinal)] = ObservedPod(pod_name, int(ordinal), containers[0].get("image", ""), ready,
                                         bool(meta.get("deletionTimestamp")))
    return pods


def delete_broker_pod(*, region_id: str, namespace: str, pod: str) -> None:
    """Deletes one broker pod for its StatefulSet to recreate from the current template: how a pod stuck on a
    bad revision is replaced after the template was rolled back (the controller never replaces a pod that is
    not Ready on its own, the "forced rollback" of the StatefulSet documentation)."""
    core = client.CoreV1Api(api_client_for_region(region_id))
    _call(f"delete Pod {namespace}/{pod}", core.delete_namespaced_pod, pod, namespace, tolerate=(404,))
