"""The API resources the simulator serves and the discovery documents the client (and the dynamic client)
reads to find them. Only what mqcloud renders is modelled; everything else answers 404 like an API server
without that extension installed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

READ_WRITE = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    subresources: tuple[str, ...] = ()
    short_names: tuple[str, ...] = ()
    # Pods belong to the simulated kubelet; clients may read and delete them (a delete is a restart), not write.
    read_only: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """The name the real server uses in messages: `statefulsets.apps`, `configmaps`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def verbs(self) -> tuple[str, ...]:
        return ("delete", "get", "list", "watch") if self.read_only else READ_WRITE


RESOURCES = (
    ResourceType("", "v1", "namespaces", "Namespace", namespaced=False, subresources=("status",), short_names=("ns",)),
    ResourceType("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
    ResourceType("", "v1", "secrets", "Secret"),
    ResourceType("", "v1", "services", "Service", subresources=("status",), short_names=("svc",)),
    ResourceType("", "v1", "resourcequotas", "ResourceQuota", subresources=("status",), short_names=("quota",)),
    ResourceType("", "v1", "pods", "Pod", subresources=("status",), short_names=("po",), read_only=True),
    ResourceType("apps", "v1", "statefulsets", "StatefulSet", subresources=("status", "scale"), short_names=("sts",)),
    ResourceType("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", subresources=("status",),
                 short_names=("pdb",)),
    ResourceType("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short_names=("netpol",)),
)
BY_PLURAL = {rt.plural: rt for rt in RESOURCES}
NAMESPACES = BY_PLURAL["namespaces"]
PODS = BY_PLURAL["pods"]
SERVICES = BY_PLURAL["services"]
STATEFULSETS = BY_PLURAL["statefulsets"]
PDBS = BY_PLURAL["poddisruptionbudgets"]

VERSION_INFO = {
    "major": "1", "minor": "33", "gitVersion": "v1.33.0-mqcloud-sim", "gitCommit": "0" * 40,
    "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc",
    "platform": "linux/amd64",
}


def lookup(group: str, version: str, plural: str) -> ResourceType | None:
    rt = BY_PLURAL.get(plural)
    return rt if rt and rt.group == group and rt.version == version else None


def _group_versions() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for rt in RESOURCES:
        if rt.group and rt.version not in groups.setdefault(rt.group, []):
            groups[rt.group].append(rt.version)
    return groups


def _api_group(name: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": entries, "preferredVersion": entries[0]}


def core_versions() -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}


def group_list() -> dict[str, Any]:
    groups = [_api_group(name, versions) for name, versions in _group_versions().items()]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def group(name: str) -> dict[str, Any] | None:
    versions = _group_versions().get(name)
    return _api_group(name, versions) if versions else None


def resource_list(group_name: str, version: str) -> dict[str, Any] | None:
    members = [rt for rt in RESOURCES if rt.group == group_name and rt.version == version]
    if not members:
        return None
    resources: list[dict[str, Any]] = []
    for rt in members:
        resources.append({"name": rt.plural, "singularName": rt.kind.lower(), "namespaced": rt.namespaced,
                          "kind": rt.kind, "verbs": list(rt.verbs), "shortNames": list(rt.short_names)})
        for sub in rt.subresources:
            kind, grp, ver = ("Scale", "autoscaling", "v1") if sub == "scale" else (rt.kind, rt.group, rt.version)
            resources.append({"name": f"{rt.plural}/{sub}", "singularName": "", "namespaced": rt.namespaced,
                              "kind": kind, "group": grp, "version": ver, "verbs": ["get", "patch", "update"]})
    gv = f"{group_name}/{version}" if group_name else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}
