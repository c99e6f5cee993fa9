"""Defaulting and validation: the subset of the real API server's admission that catches the mistakes a
renderer can make (bad names, a selector that does not match its template, edits to immutable fields)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re
from typing import Any

from . import selectors
from .errors import invalid
from .resources import ResourceType

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# What a StatefulSet update may change; everything else in its spec is immutable on a real server.
STS_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "persistentVolumeClaimRetentionPolicy",
               "minReadySeconds", "revisionHistoryLimit")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
# What a real server reports before any controller has run; the client's models require these fields.
INITIAL_STATUS = {
    "StatefulSet": {"replicas": 0, "availableReplicas": 0},
    "PodDisruptionBudget": {"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0},
}


def _stable_number(seed: str, modulo: int) -> int:
    # Deterministic per object, so re-defaulting on every write never moves an allocated IP or port.
    return int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16) % modulo


def apply_defaults(rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    meta = obj["metadata"]
    spec = obj.get("spec")
    if not obj.get("status") and rt.kind in INITIAL_STATUS:
        obj["status"] = dict(INITIAL_STATUS[rt.kind])
    if rt.kind == "Namespace":
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {}).setdefault("phase", "Active")
    elif rt.kind == "Secret":
        obj.setdefault("type", "Opaque")
        # As on a real server, stringData is write-only: folded into data and never stored.
        for k, v in (obj.pop("stringData", None) or {}).items():
            obj.setdefault("data", {})[k] = base64.b64encode(str(v).encode()).decode()
    elif rt.kind == "Service" and isinstance(spec, dict):
        _default_service(obj, spec, (old or {}).get("spec") or {})
    elif rt.kind == "StatefulSet" and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        spec.setdefault("revisionHistoryLimit", 10)
        strategy = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            strategy.setdefault("type", "RollingUpdate")
            strategy.setdefault("rollingUpdate", {"partition": 0})
        spec.setdefault("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})


def _default_service(obj: dict[str, Any], spec: dict[str, Any], old_spec: dict[str, Any]) -> None:
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    ident = f"{obj['metadata'].get('namespace')}/{obj['metadata']['name']}"
    if spec["type"] != "ExternalName":
        # clusterIP is immutable; a PUT that omits it keeps the allocated one, as the real server does.
        ip = spec.get("clusterIP") or old_spec.get("clusterIP") or (
            f"10.96.{_stable_number(ident, 250)}.{_stable_number(ident + '#', 250) + 2}")
        spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
        spec.setdefault("ipFamilies", ["IPv4"])
    old_node_ports = {p.get("port"): p.get("nodePort") for p in old_spec.get("ports") or []}
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
        if spec["type"] in ("NodePort", "LoadBalancer") and not port.get("nodePort"):
            port["nodePort"] = old_node_ports.get(port.get("port")) or 30000 + _stable_number(
                f"{ident}:{port.get('port')}", 2768)
    obj.setdefault("status", {}).setdefault("loadBalancer", {})


def validate(rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    meta = obj["metadata"]
    name = meta.get("name", "")
    causes: list[tuple[str, str, str]] = []
    dns_label = rt.kind in ("Namespace", "Service")
    pattern, limit = (_DNS_LABEL, 63) if dns_label else (_DNS_SUBDOMAIN, 253)
    if not pattern.match(name) or len(name) > limit:
        kind = "RFC 1123 label" if dns_label else "RFC 1123 subdomain"
        causes.append(("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": a lowercase {kind} '
                       "must consist of lower case alphanumeric characters, '-' or '.'"))
    for key, value in (meta.get("labels") or {}).items():
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append((f"metadata.labels.{key}", "FieldValueInvalid", f'Invalid value: "{value}"'))
    check = _KIND_CHECKS.get(rt.kind)
    if check:
        causes += check(obj, old)
    if causes:
        raise invalid(rt, name, causes)


def _statefulset(obj: dict[str, Any], old: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "FieldValueRequired", "Required value")]
    causes = []
    selector = spec.get("selector")
    template = spec.get("template") or {}
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        causes.append(("spec.selector", "FieldValueRequired", "Required value"))
    elif not selectors.labels_match(selectors.from_label_selector(selector),
                                    (template.get("metadata") or {}).get("labels")):
        causes.append(("spec.template.metadata.labels", "FieldValueInvalid",
                       "Invalid value: `selector` does not match template `labels`"))
    containers = (template.get("spec") or {}).get("containers") or []
    if not containers:
        causes.append(("spec.template.spec.containers", "FieldValueRequired", "Required value"))
    for n, c in enumerate(containers):
        for field in ("name", "image"):
            if not c.get(field):
                causes.append((f"spec.template.spec.containers[{n}].{field}", "FieldValueRequired",
                               "Required value"))
    replicas = spec.get("replicas")
    if not isinstance(replicas, int) or replicas < 0:
        causes.append(("spec.replicas", "FieldValueInvalid", "Invalid value: must be greater than or equal to 0"))
    if old is not None:
        frozen_new = {k: v for k, v in spec.items() if k not in STS_MUTABLE}
        frozen_old = {k: v for k, v in (old.get("spec") or {}).items() if k not in STS_MUTABLE}
        if frozen_new != frozen_old:
            causes.append(("spec", "FieldValueForbidden", "Forbidden: updates to statefulset spec for fields "
                           "other than " + ", ".join(f"'{f}'" for f in STS_MUTABLE) + " are forbidden"))
    return causes


def _service(obj: dict[str, Any], old: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    spec = obj.get("spec") or {}
    causes = []
    if spec.get("type") not in SERVICE_TYPES:
        causes.append(("spec.type", "FieldValueNotSupported", f'Unsupported value: "{spec.get("type")}"'))
    if spec.get("type") != "ExternalName" and not spec.get("ports"):
        causes.append(("spec.ports", "FieldValueRequired", "Required value"))
    for n, port in enumerate(spec.get("ports") or []):
        if not isinstance(port.get("port"), int) or not 0 < port["port"] < 65536:
            causes.append((f"spec.ports[{n}].port", "FieldValueInvalid", "Invalid value: must be 1-65535"))
    old_ip = ((old or {}).get("spec") or {}).get("clusterIP")
    if old_ip and spec.get("clusterIP") != old_ip:
        causes.append(("spec.clusterIP", "FieldValueInvalid", "Invalid value: field is immutable"))
    return causes


def _pdb(obj: dict[str, Any], old: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    spec = obj.get("spec") or {}
    if "minAvailable" in spec and "maxUnavailable" in spec:
        return [("spec", "FieldValueInvalid", "Invalid value: minAvailable and maxUnavailable cannot be both set")]
    return []


def _secret(obj: dict[str, Any], old: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    causes = []
    for key, value in (obj.get("data") or {}).items():
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, TypeError, ValueError):
            causes.append((f"data[{key}]", "FieldValueInvalid", "Invalid value: illegal base64 data"))
    return causes


POLICY_TYPES = ("Ingress", "Egress")
PROTOCOLS = ("TCP", "UDP", "SCTP")


def _network_policy(obj: dict[str, Any], old: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """As the real server's ValidateNetworkPolicySpec: policy types, ports, and peers (one kind each; an
    ipBlock's except entries strict subsets of its cidr, same family)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("podSelector"), dict):
        return [("spec.podSelector", "FieldValueRequired", "Required value")]
    causes: list[tuple[str, str, str]] = []
    types = spec.get("policyTypes") or []
    for n, value in enumerate(types):
        if value not in POLICY_TYPES:
            causes.append((f"spec.policyTypes[{n}]", "FieldValueNotSupported", f'Unsupported value: "{value}": '
                           'supported values: "Ingress", "Egress"'))
    if len(types) > len(POLICY_TYPES):
        causes.append(("spec.policyTypes", "FieldValueInvalid", "Invalid value: may not have more than 2 items"))
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        for r, rule in enumerate(spec.get(direction) or []):
            path = f"spec.{direction}[{r}]"
            for n, port in enumerate(rule.get("ports") or []):
                causes += _policy_port(f"{path}.ports[{n}]", port)
            for n, peer in enumerate(rule.get(peers_key) or []):
                causes += _policy_peer(f"{path}.{peers_key}[{n}]", peer)
    return causes


def _policy_port(path: str, port: dict[str, Any]) -> list[tuple[str, str, str]]:
    causes = []
    protocol = port.get("protocol", "TCP")
    if protocol not in PROTOCOLS:
        causes.append((f"{path}.protocol", "FieldValueNotSupported", f'Unsupported value: "{protocol}"'))
    number = port.get("port")
    if isinstance(number, int) and not 0 < number < 65536:
        causes.append((f"{path}.port", "FieldValueInvalid", f"Invalid value: {number}: must be between 1 and 65535"))
    return causes


def _policy_peer(path: str, peer: dict[str, Any]) -> list[tuple[str, str, str]]:
    selectors_given = sum(key in peer for key in ("podSelector", "namespaceSelector"))
    if "ipBlock" not in peer:
        return [] if selectors_given else [(path, "FieldValueRequired", "Required value: must specify a peer")]
    if selectors_given:
        return [(path, "FieldValueForbidden", "Forbidden: may not specify both ipBlock and another peer")]
    block = peer["ipBlock"] or {}
    try:
        cidr = ipaddress.ip_network(block.get("cidr") or "", strict=False)
    except ValueError:
        return [(f"{path}.ipBlock.cidr", "FieldValueInvalid", f'Invalid value: "{block.get("cidr")}": must be a '
                 "valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")]
    causes = []
    for n, entry in enumerate(block.get("except") or []):
        try:
            inner = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            inner = None
        if inner is None or inner.version != cidr.version or not inner.subnet_of(cidr) or inner == cidr:  # type: ignore[arg-type]  # same IP version, compared first
            causes.append((f"{path}.ipBlock.except[{n}]", "FieldValueInvalid",
                           f'Invalid value: "{entry}": must be a strict subset of `cidr`'))
    return causes


_KIND_CHECKS = {"StatefulSet": _statefulset, "Service": _service, "PodDisruptionBudget": _pdb,
                "Secret": _secret, "NetworkPolicy": _network_policy}
