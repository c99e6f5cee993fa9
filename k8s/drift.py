"""Drift: whether an object in a cluster still is what we render, without asking the cluster object by object.

Each object we apply carries ``mqcloud.io/applied-hash``, a keyed hash of what we rendered (keyed, because a
Secret's rendering holds its values and the annotation is readable by anyone who can list Secrets). An
object is drifted when it is missing, when its hash is not the hash of what we render now (our side changed,
including a field we stopped rendering), or when a field we render has another value in the cluster (a hand
edit: server-side apply would put ours back). Fields the server adds (defaults, status) are not drift.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from k8s.clusters import secret_key

APPLIED_HASH = "mqcloud.io/applied-hash"


def _key() -> bytes:
    return hashlib.sha256(b"mqcloud applied-hash\0" + secret_key()).digest()


def applied_hash(obj: dict[str, Any]) -> str:
    """The keyed hash of a rendered object (without its own annotation)."""
    if APPLIED_HASH in (obj["metadata"].get("annotations") or {}):
        obj = copy.deepcopy(obj)
        obj["metadata"]["annotations"].pop(APPLIED_HASH)
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hmac.new(_key(), text.encode(), hashlib.sha256).hexdigest()[:32]


def stamped(obj: dict[str, Any]) -> dict[str, Any]:
    """The rendered object as we apply it: with its ``applied-hash`` annotation."""
    out = copy.deepcopy(obj)
    out["metadata"].setdefault("annotations", {})[APPLIED_HASH] = applied_hash(obj)
    return out


def _as_stored(obj: dict[str, Any]) -> dict[str, Any]:
    """A rendered object as the API server stores it: a Secret's write-only ``stringData`` folded into
    ``data`` (base64)."""
    if obj.get("kind") != "Secret" or not obj.get("stringData"):
        return obj
    out = copy.deepcopy(obj)
    data = out.setdefault("data", {})
    for key, value in out.pop("stringData").items():
        data[key] = base64.b64encode(value.encode()).decode()
    return out


def _same_quantity(left: str, right: str) -> bool:
    try:
        return parse_quantity(left) == parse_quantity(right)
    except ValueError:
        return False


def contains(observed: Any, wanted: Any) -> bool:
    """Whether ``observed`` holds every field of ``wanted`` with the same value (lists item by item); quantities
    the server rewrote into another form ("1024Mi" as "1Gi") are the same."""
    if isinstance(wanted, dict):
        return isinstance(observed, dict) and all(k in observed and contains(observed[k], v)
                                                  for k, v in wanted.items())
    if isinstance(wanted, list):
        return (isinstance(observed, list) and len(observed) == len(wanted)
                and all(contains(o, w) for o, w in zip(observed, wanted, strict=True)))
    if observed == wanted:
        return True
    return isinstance(observed, str) and isinstance(wanted, str) and _same_quantity(observed, wanted)


@dataclass
class ClusterIndex:
    """What a cluster holds of ours, by (kind, namespace, name)."""

    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    api_calls: int = 0

    def add(self, kind: str, items: list[dict[str, Any]]) -> None:
        for item in items:
            meta = item.get("metadata") or {}
            if not meta.get("deletionTimestamp"):
                self.objects[(kind, meta.get("namespace") or "", meta.get("name") or "")] = item

    def drifted(self, rendered: dict[str, Any]) -> bool:
        meta = rendered["metadata"]
        observed = self.objects.get((rendered["kind"], meta.get("namespace") or "", meta["name"]))
        if observed is None:
            return True
        if ((observed.get("metadata") or {}).get("annotations") or {}).get(APPLIED_HASH) != applied_hash(rendered):
            return True
        return not contains(observed, _as_stored(rendered))
