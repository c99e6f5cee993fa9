"""The cluster state: every object, the cluster-wide resourceVersion counter, the event history watches
replay, and the pod readiness timeline. One re-entrant lock guards all of it; requests are tiny, so
contention never matters and every verb is trivially atomic."""

from __future__ import annotations

import builtins
import copy
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, NamedTuple

from . import apply, selectors, validation
from .errors import ApiError, already_exists, bad_request, conflict, invalid, not_found
from .resources import BY_PLURAL, NAMESPACES, PODS, STATEFULSETS, ResourceType

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
_PATCHERS: dict[str, Callable[[Any, Any], Any]] = {
    MERGE_PATCH: apply.merge_patch, STRATEGIC_PATCH: apply.strategic_merge, JSON_PATCH: apply.json_patch}
STALE = "the object has been modified; please apply your changes to the latest version and try again"


class Event(NamedTuple):
    rv: int
    type: str
    plural: str
    namespace: str
    obj: dict[str, Any]  # never mutated after it is stored


def _read_only(rt: ResourceType) -> ApiError:
    return ApiError(405, f"{rt.qualified} are managed by the simulated kubelet")


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_ready(pod: dict[str, Any] | None) -> bool:
    conditions = ((pod or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


class Store:
    def __init__(self, *, watch_history: int = 2000, namespace_delete_delay_s: float = 0.5) -> None:
        self.lock = threading.RLock()
        self._changed = threading.Condition(self.lock)
        self._objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        # The same objects grouped by (plural, namespace): controllers list a namespace's pods for every
        # StatefulSet on every pass, which must not cost a scan of the whole cluster.
        self._groups: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self._rv = 0
        self._events: deque[Event] = deque()
        self._history = watch_history
        self._compacted_rv = 0
        self._pod_events: dict[str, list[dict[str, Any]]] = {}
        self._namespace_deadlines: dict[str, float] = {}
        self.namespace_delete_delay_s = namespace_delete_delay_s
        self.closed = False

    # ---- reads -----------------------------------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self._existing(rt, namespace, name))

    def list(self, rt: ResourceType, namespace: str | None, *, label_selector: str | None = None,
             field_selector: str | None = None) -> dict[str, Any]:
        labels, fields = selectors.parse_label_selector(label_selector), selectors.parse_field_selector(field_selector)
        with self.lock:
            items = [copy.deepcopy(o) for o in self._scan(rt, namespace)
                     if selectors.labels_match(labels, o["metadata"].get("labels"))
                     and selectors.fields_match(fields, o)]
            return {"kind": f"{rt.kind}List", "apiVersion": rt.api_version,
                    "metadata": {"resourceVersion": str(self._rv)}, "items": items}

    def objects(self, rt: ResourceType, namespace: str | None = None, *,
                copies: bool = True) -> builtins.list[dict[str, Any]]:
        """Every object of a type. ``copies=False`` hands out the stored objects themselves: only for a
        caller that holds ``self.lock`` and never mutates them (the controllers' passes, which would
        otherwise deep-copy the whole cluster many times a second)."""
        with self.lock:
            found = self._scan(rt, namespace)
            return [copy.deepcopy(o) for o in found] if copies else found

    # ---- writes through the API ------------------------------------------------------------------------

    def create(self, rt: ResourceType, namespace: str | None, body: dict[str, Any], *, manager: str,
               owners: apply.Owners | None = None) -> dict[str, Any]:
        if rt.read_only:
            raise _read_only(rt)
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if rt.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise bad_request("the namespace of the provided object does not match the namespace sent on "
                                  "the request")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        if not meta.get("name"):
            raise invalid(rt, "", [("metadata.name", "FieldValueRequired", "Required value: name or "
                                    "generateName is required")])
        with self.lock:
            self._require_namespace(rt, namespace)
            if self._key(rt, namespace, meta["name"]) in self._objects:
                raise already_exists(rt, meta["name"])
            if "status" in rt.subresources:
                obj["status"] = {}  # status is the controllers' to write
            owners = owners if owners is not None else apply.record_update(None, obj, manager)
            obj = self._admit(rt, obj, None)
            meta = obj["metadata"]
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_iso(), generation=1)
            apply.write_owners(obj, owners, None)
            return self._write(rt, None, obj)

    def replace(self, rt: ResourceType, namespace: str | None, name: str, body: dict[str, Any], *,
                manager: str, subresource: str | None = None) -> dict[str, Any]:
        with self.lock:
            old = self._writable(rt, namespace, name, body)
            new = self._from_scale(old, body) if subresource == "scale" else body
            return self._update(rt, old, new, manager=manager, subresource=subresource)

    def patch(self, rt: ResourceType, namespace: str | None, name: str, patch_type: str, patch: Any, *,
              manager: str | None, force: bool = False, subresource: str | None = None,
              ) -> tuple[dict[str, Any], bool]:
        """Returns (object, created); only server-side apply creates."""
        with self.lock:
            if patch_type == APPLY_PATCH:
                return self._apply(rt, namespace, name, patch, manager=manager, force=force,
                                   subresource=subresource)
            patcher = _PATCHERS.get(patch_type)
            if patcher is None:
                raise ApiError(415, f"the body of the request was in an unknown format - accepted media types "
                               f"include: {', '.join([*_PATCHERS, APPLY_PATCH])}")
            old = self._writable(rt, namespace, name, None)
            view = self.scale_view(old) if subresource == "scale" else old
            patched = patcher(view, patch)
            if not isinstance(patched, dict):
                raise bad_request("patch did not produce an object")
            self._check_precondition(rt, old, patched)
            new = self._from_scale(old, patched) if subresource == "scale" else patched
            return self._update(rt, old, new, manager=manager or "unknown", subresource=subresource), False

    def _apply(self, rt: ResourceType, namespace: str | None, name: str, body: Any, *, manager: str | None,
               force: bool, subresource: str | None) -> tuple[dict[str, Any], bool]:
        if not manager:
            raise bad_request("PATCH, application/apply-patch+yaml requests must include a fieldManager")
        if not isinstance(body, dict):
            raise bad_request("apply configuration must be an object")
        if subresource:
            raise bad_request("the simulator does not support apply on subresources")
        if (body.get("metadata") or {}).get("name", name) != name:
            raise bad_request("the name of the object does not match the name on the URL")
        old = self._objects.get(self._key(rt, namespace, name))
        if old is None:
            merged, owners = apply.server_side_apply({}, body, manager, force=force)
            merged["metadata"]["name"] = name
            return self.create(rt, namespace, merged, manager=manager, owners=owners), True
        if rt.read_only:
            raise _read_only(rt)
        self._check_precondition(rt, old, body)
        merged, owners = apply.server_side_apply(old, body, manager, force=force)
        return self._update(rt, old, merged, manager=manager, owners=owners), False

    def delete(self, rt: ResourceType, namespace: str | None, name: str,
               preconditions: dict[str, Any] | None = None) -> dict[str, Any]:
        with self.lock:
            old = self._existing(rt, namespace, name)
            for field in ("uid", "resourceVersion"):
                wanted = (preconditions or {}).get(field)
                if wanted and wanted != old["metadata"].get(field):
                    raise conflict(rt, name, f"Precondition failed: {field}: {wanted}")
            if rt is NAMESPACES:
                self._terminate_namespace(old)
            else:
                self.remove(rt, namespace, name)
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": {"name": name, "group": rt.group, "kind": rt.plural, "uid": old["metadata"]["uid"]}}

    def _terminate_namespace(self, old: dict[str, Any]) -> None:
        # Deletion is asynchronous, as on a real cluster: the namespace sits in Terminating (refusing new
        # objects) until its contents are gone, which callers must be ready to wait for.
        if old["metadata"].get("deletionTimestamp"):
            return
        new = copy.deepcopy(old)
        new["metadata"]["deletionTimestamp"] = now_iso()
        new["status"] = {"phase": "Terminating"}
        self._write(NAMESPACES, old, new)
        self._namespace_deadlines[old["metadata"]["name"]] = time.monotonic() + self.namespace_delete_delay_s

    # ---- writes by the simulated controllers and fault injection ---------------------------------------

    def put(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or overwrite without admission or ownership: the controllers' (and a saboteur's) door."""
        with self.lock:
            meta = obj["metadata"]
            old = self._objects.get(self._key(rt, meta.get("namespace"), meta["name"]))
            obj = copy.deepcopy(obj)
            obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
            if old is None:
                obj["metadata"].update(uid=str(uuid.uuid4()), creationTimestamp=now_iso(), generation=1)
            return self._write(rt, old, obj)

    def set_status(self, rt: ResourceType, namespace: str | None, name: str, status: dict[str, Any]) -> None:
        """Replace the status of the current object (the controllers never hold a stale copy of its spec)."""
        with self.lock:
            old = self._objects.get(self._key(rt, namespace, name))
            if old is not None:
                self._write(rt, old, {**copy.deepcopy(old), "status": copy.deepcopy(status)})

    def remove(self, rt: ResourceType, namespace: str | None, name: str) -> None:
        with self.lock:
            key = self._key(rt, namespace, name)
            old = self._objects.pop(key, None)
            if old is None:
                return
            group = self._groups.get(key[:2])
            if group is not None:
                group.pop(name, None)
                if not group:
                    del self._groups[key[:2]]
            self._rv += 1
            gone = copy.deepcopy(old)
            gone["metadata"]["resourceVersion"] = str(self._rv)
            self._record(Event(self._rv, "DELETED", rt.plural, namespace or "", gone), old, None)

    def purge_terminated(self) -> None:
        """Finish namespace deletions whose delay has passed."""
        with self.lock:
            for name, deadline in list(self._namespace_deadlines.items()):
                if time.monotonic() >= deadline:
                    self.purge_namespace(name)

    def purge_namespace(self, name: str) -> None:
        """Remove a namespace at once: its contents first, then the namespace itself."""
        with self.lock:
            contents = [(plural, obj_name) for (plural, ns), group in self._groups.items() if ns == name
                        for obj_name in group]
            for plural, obj_name in contents:
                if BY_PLURAL[plural].namespaced:
                    self.remove(BY_PLURAL[plural], name, obj_name)
            self.remove(NAMESPACES, None, name)
            self._namespace_deadlines.pop(name, None)

    def compact(self) -> None:
        """Forget the watch history, so any watch resuming from an older resourceVersion gets 410 Gone."""
        with self.lock:
            self._events.clear()
            self._compacted_rv = self._rv

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self._changed.notify_all()

    # ---- watch -----------------------------------------------------------------------------------------

    def watch(self, rt: ResourceType, namespace: str | None, *, label_selector: str | None,
              field_selector: str | None, resource_version: str | None, timeout_s: float,
              ) -> Iterator[dict[str, Any]]:
        labels, fields = selectors.parse_label_selector(label_selector), selectors.parse_field_selector(field_selector)

        def visible(obj: dict[str, Any]) -> bool:
            return selectors.labels_match(labels, obj["metadata"].get("labels")) and selectors.fields_match(
                fields, obj)

        try:
            cursor = int(resource_version or 0)
        except ValueError as exc:
            raise bad_request(f"invalid resourceVersion {resource_version!r}") from exc
        with self.lock:
            # No resourceVersion (or "0") means "current state, then changes", like a real list+watch.
            initial = [] if cursor else [o for o in self._scan(rt, namespace) if visible(o)]
            cursor = cursor or self._rv
        for obj in initial:
            yield {"type": "ADDED", "object": obj}
        deadline = time.monotonic() + timeout_s
        while not self.closed and time.monotonic() < deadline:
            with self.lock:
                expired = cursor < self._compacted_rv
                batch = [] if expired else [e for e in self._events if e.rv > cursor]
                if not batch and not expired:
                    self._changed.wait(min(0.5, max(0.0, deadline - time.monotonic())))
                    continue
            if expired:
                yield {"type": "ERROR", "object": ApiError(
                    410, f"too old resource version: {cursor} ({self._compacted_rv})", reason="Expired").status()}
                return
            cursor = batch[-1].rv
            for e in batch:
                if e.plural == rt.plural and (namespace is None or e.namespace == namespace) and visible(e.obj):
                    yield {"type": e.type, "object": e.obj}

    # ---- pod readiness timeline ------------------------------------------------------------------------

    def pod_events(self, namespace: str) -> builtins.list[dict[str, Any]]:
        """Pod lifecycle in a namespace: [{"at": epoch seconds, "pod", "event", "ready"}], oldest first.
        `event` is created / ready / not-ready / deleted; `ready` is the pod's readiness after it."""
        with self.lock:
            return copy.deepcopy(self._pod_events.get(namespace, []))

    def ready_below_seconds(self, namespace: str, threshold: int, *, since: float, until: float | None = None,
                            prefix: str = "") -> float:
        """How long, within [since, until], fewer than `threshold` pods (named `prefix`…) were ready: the
        window in which a broker cluster of `threshold` nodes was short of capacity."""
        until = time.time() if until is None else until
        ready: set[str] = set()
        total, cursor = 0.0, since
        for e in self.pod_events(namespace):
            if not e["pod"].startswith(prefix):
                continue
            if e["at"] > cursor:
                end = min(e["at"], until)
                if len(ready) < threshold and end > cursor:
                    total += end - cursor
                cursor = max(cursor, end)
            (ready.add if e["ready"] else ready.discard)(e["pod"])
        if until > cursor and len(ready) < threshold:
            total += until - cursor
        return total

    def min_ready(self, namespace: str, *, since: float, until: float | None = None, prefix: str = "") -> int:
        """The fewest pods (named `prefix`…) ready at any moment within [since, until]: during a rolling
        update of n nodes behind a PodDisruptionBudget of maxUnavailable 1, never below n - 1."""
        until = time.time() if until is None else until
        ready: set[str] = set()
        lowest: int | None = None
        for e in self.pod_events(namespace):
            if not e["pod"].startswith(prefix) or e["at"] > until:
                continue
            if e["at"] >= since and lowest is None:
                lowest = len(ready)  # what was ready when the window opened
            (ready.add if e["ready"] else ready.discard)(e["pod"])
            if e["at"] >= since:
                lowest = min(lowest if lowest is not None else len(ready), len(ready))
        return len(ready) if lowest is None else lowest

    # ---- internals -------------------------------------------------------------------------------------

    @staticmethod
    def _key(rt: ResourceType, namespace: str | None, name: str) -> tuple[str, str, str]:
        return rt.plural, (namespace or "") if rt.namespaced else "", name

    def _scan(self, rt: ResourceType, namespace: str | None) -> builtins.list[dict[str, Any]]:
        if namespace is not None and rt.namespaced:
            found = list(self._groups.get((rt.plural, namespace), {}).values())
        else:
            found = [o for (plural, _), group in self._groups.items() if plural == rt.plural for o in group.values()]
        return sorted(found, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))

    def _existing(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self._objects.get(self._key(rt, namespace, name))
        if obj is None:
            raise not_found(rt, name)
        return obj

    def _writable(self, rt: ResourceType, namespace: str | None, name: str, body: Any) -> dict[str, Any]:
        old = self._existing(rt, namespace, name)
        if rt.read_only:
            raise _read_only(rt)
        if body is not None:
            if not isinstance(body, dict):
                raise bad_request("request body must be an object")
            if (body.get("metadata") or {}).get("name", name) != name:
                raise bad_request("the name of the object does not match the name on the URL")
            self._check_precondition(rt, old, body)
        return old

    @staticmethod
    def _check_precondition(rt: ResourceType, old: dict[str, Any], body: dict[str, Any]) -> None:
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != old["metadata"]["resourceVersion"]:
            raise conflict(rt, old["metadata"]["name"], STALE)

    def _require_namespace(self, rt: ResourceType, namespace: str | None) -> None:
        if not rt.namespaced:
            return
        ns = self._objects.get(self._key(NAMESPACES, None, namespace or ""))
        if ns is None:
            raise not_found(NAMESPACES, namespace or "")
        if ns["metadata"].get("deletionTimestamp"):
            raise ApiError(403, f"{rt.qualified} is forbidden: unable to create new content in namespace "
                           f"{namespace} because it is being terminated", details={
                               "name": namespace, "kind": rt.plural,
                               "causes": [{"reason": "NamespaceTerminating", "field": "metadata.namespace"}]})

    def _admit(self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        validation.apply_defaults(rt, obj, old)
        validation.validate(rt, obj, old)
        return obj

    def _update(self, rt: ResourceType, old: dict[str, Any], new: dict[str, Any], *, manager: str,
                subresource: str | None = None, owners: apply.Owners | None = None) -> dict[str, Any]:
        if subresource == "status":
            # A status write changes status only, a main-resource write everything but status.
            new = {**copy.deepcopy(old), "status": copy.deepcopy(new.get("status") or {})}
        else:
            new = copy.deepcopy(new)
            if "status" in rt.subresources:
                new["status"] = copy.deepcopy(old.get("status") or {})
            if owners is None:
                owners = apply.record_update(old, new, manager)
        meta = new.setdefault("metadata", {})
        for field in ("name", "namespace", "uid", "creationTimestamp", "generation", "deletionTimestamp",
                      "resourceVersion", "managedFields"):
            if field in old["metadata"]:
                meta[field] = old["metadata"][field]
            else:
                meta.pop(field, None)
        new = self._admit(rt, new, old)
        if new.get("spec") != old.get("spec"):
            meta["generation"] = old["metadata"].get("generation", 1) + 1
        if owners is not None:
            apply.write_owners(new, owners, old)
        return self._write(rt, old, new)

    def _write(self, rt: ResourceType, old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
        if old is not None and new == old:
            return copy.deepcopy(old)  # a no-op write keeps the resourceVersion, so watchers see nothing
        self._rv += 1
        new["metadata"]["resourceVersion"] = str(self._rv)
        namespace = new["metadata"].get("namespace")
        key = self._key(rt, namespace, new["metadata"]["name"])
        self._objects[key] = new
        self._groups.setdefault(key[:2], {})[key[2]] = new
        self._record(Event(self._rv, "MODIFIED" if old else "ADDED", rt.plural, namespace or "", new), old, new)
        return copy.deepcopy(new)

    def _record(self, event: Event, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if len(self._events) >= self._history:
            self._compacted_rv = self._events.popleft().rv
        self._events.append(event)
        if event.plural == PODS.plural:
            self._track_pod(old, new)
        self._changed.notify_all()

    def _track_pod(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        meta = (new or old or {})["metadata"]
        ready = is_ready(new)
        if old is None:
            kind = "created"
        elif new is None:
            kind = "deleted"
        elif is_ready(old) != ready:
            kind = "ready" if ready else "not-ready"
        else:
            return
        self._pod_events.setdefault(meta["namespace"], []).append(
            {"at": time.time(), "pod": meta["name"], "event": kind, "ready": ready})

    @staticmethod
    def scale_view(obj: dict[str, Any]) -> dict[str, Any]:
        """The autoscaling/v1 Scale a StatefulSet's /scale subresource reads and writes."""
        meta = obj["metadata"]
        return {"apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                             if k in meta},
                "spec": {"replicas": obj["spec"].get("replicas", 1)},
                "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                           "selector": selectors.selector_string(obj["spec"].get("selector"))}}

    @staticmethod
    def _from_scale(old: dict[str, Any], scale: dict[str, Any]) -> dict[str, Any]:
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise invalid(STATEFULSETS, old["metadata"]["name"], [
                ("spec.replicas", "FieldValueInvalid", "Invalid value: must be greater than or equal to 0")])
        new = copy.deepcopy(old)
        new["spec"]["replicas"] = replicas
        return new

