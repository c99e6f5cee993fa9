"""Patch flavours and server-side apply with field ownership.

Ownership is tracked as sets of leaf paths per (manager, operation), serialized to `metadata.managedFields`
in the real FieldsV1 shape. A path element is a field name, or `("k", '{"name":"emqx"}')` for an item of a
list merged by key. That is enough to reproduce what mqcloud depends on: apply is idempotent, fields a
manager stops applying are removed, an `Update` (PUT, merge patch, `kubectl edit`) takes ownership silently,
and a later apply of a different value for such a field conflicts unless forced.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

from .errors import ApiError, bad_request

Path = tuple[Any, ...]
Owners = dict[tuple[str, str], set[Path]]
MISSING: Any = object()

# Lists the real API merges per item (strategic merge patch keys / SSA list-map keys); the first candidate
# every item carries is used, so container ports without names still merge by containerPort.
MERGE_KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    "containers": (("name",),), "initContainers": (("name",),), "ephemeralContainers": (("name",),),
    "env": (("name",),), "volumes": (("name",),), "imagePullSecrets": (("name",),),
    "volumeMounts": (("mountPath",),), "conditions": (("type",),),
    "ports": (("name",), ("containerPort",), ("port",)),
}
# Set by the server, never owned by a field manager.
SYSTEM_METADATA = ("name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                   "deletionTimestamp", "managedFields", "selfLink")


def list_key(field: Any, items: list[Any]) -> tuple[str, ...] | None:
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    for candidate in MERGE_KEYS.get(field, ()) if isinstance(field, str) else ():
        if all(all(k in item for k in candidate) for item in items):
            return candidate
    return None


def _item_id(item: dict[str, Any], key: tuple[str, ...]) -> str:
    return json.dumps({k: item[k] for k in key}, sort_keys=True, separators=(",", ":"))


# ---- patches -------------------------------------------------------------------------------------------

def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge recursively, null deletes, lists are replaced whole."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def strategic_merge(target: Any, patch: Any) -> Any:
    """Like a merge patch, but lists named in MERGE_KEYS merge item by item; `$patch: delete` removes an item
    and `$patch: replace` replaces a map (the two directives mqcloud could plausibly send)."""
    if not isinstance(patch, dict) or not isinstance(target, dict):
        return _strip_directives(patch)
    out = copy.deepcopy(target)
    for k, v in patch.items():
        if k.startswith("$"):
            continue
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict) and v.get("$patch") != "replace":
            out[k] = strategic_merge(out[k], v)
        elif isinstance(v, list) and isinstance(out.get(k), list) and (key := list_key(k, out[k] + v)):
            out[k] = _merge_keyed(out[k], v, key)
        else:
            out[k] = _strip_directives(v)
    return out


def _merge_keyed(current: list[dict[str, Any]], patch: list[dict[str, Any]], key: tuple[str, ...]) -> list[Any]:
    merged = {_item_id(i, key): copy.deepcopy(i) for i in current}
    for item in patch:
        ident = _item_id(item, key)
        if item.get("$patch") == "delete":
            merged.pop(ident, None)
        else:
            merged[ident] = strategic_merge(merged[ident], item) if ident in merged else _strip_directives(item)
    return list(merged.values())


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return copy.deepcopy(value)


def json_patch(target: Any, ops: Any) -> Any:
    """RFC 6902 add/remove/replace/test, which is what the client sends when given a list body."""
    if not isinstance(ops, list):
        raise bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in ops:
        kind, path = op.get("op"), op.get("path", "")
        if kind not in ("add", "remove", "replace", "test"):
            raise bad_request(f"unsupported json patch op {kind!r}")
        parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
        parent = _walk_pointer(doc, parts[:-1]) if parts else MISSING
        if parent is MISSING:
            raise ApiError(422, f"json patch path {path!r} does not exist")
        last: Any = parts[-1]
        if isinstance(parent, list):
            last = len(parent) if last == "-" else int(last)
        current = parent[last] if (isinstance(parent, dict) and last in parent) or (
            isinstance(parent, list) and last < len(parent)) else MISSING
        if kind == "test":
            if current != op.get("value"):
                raise ApiError(422, f"json patch test failed at {path!r}")
            continue
        if kind in ("remove", "replace"):
            if current is MISSING:
                raise ApiError(422, f"json patch path {path!r} does not exist")
            del parent[last]
        if kind in ("add", "replace"):
            if isinstance(parent, list):
                parent.insert(last, op["value"])
            else:
                parent[last] = op["value"]
    return doc


def _walk_pointer(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        elif isinstance(doc, dict) and part in doc:
            doc = doc[part]
        else:
            return MISSING
    return doc


# ---- field paths ---------------------------------------------------------------------------------------

def leaf_paths(value: Any, prefix: Path = (), field: Any = None) -> set[Path]:
    if isinstance(value, dict) and value:
        out: set[Path] = set()
        for k, v in value.items():
            out |= leaf_paths(v, (*prefix, k), k)
        return out
    if isinstance(value, list) and (key := list_key(field, value)):
        out = set()
        for item in value:
            out |= leaf_paths(item, (*prefix, ("k", _item_id(item, key))), None)
        return out
    return {prefix}


def owned_leaves(obj: dict[str, Any]) -> set[Path]:
    """The paths field managers can own: everything but status and server-set metadata."""
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "status", "metadata")}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in SYSTEM_METADATA}
    paths = leaf_paths(body)
    if meta:
        paths |= leaf_paths(meta, ("metadata",))
    return {p for p in paths if p}


def _locate(container: Any, elem: Any) -> Any:
    """The index or key `elem` designates in `container`, or MISSING."""
    if isinstance(elem, tuple):
        if not isinstance(container, list):
            return MISSING
        wanted = json.loads(elem[1])
        return next((n for n, item in enumerate(container) if isinstance(item, dict)
                     and all(item.get(k) == v for k, v in wanted.items())), MISSING)
    return elem if isinstance(container, dict) and elem in container else MISSING


def get_at(obj: Any, path: Path) -> Any:
    current = obj
    for elem in path:
        at = _locate(current, elem)
        if at is MISSING:
            return MISSING
        current = current[at]
    return current


def remove_at(obj: dict[str, Any], path: Path) -> None:
    """Remove the value at `path`, then any map, list or keyed item that only held it."""
    if len(path) >= 2 and isinstance(path[-2], tuple):
        key_fields = set(json.loads(path[-2][1]))
        if path[-1] in key_fields:
            # An item's key is removed with the item, once nothing else is left in it.
            item = get_at(obj, path[:-1])
            if isinstance(item, dict) and set(item) <= key_fields:
                remove_at(obj, path[:-1])
            return
    chain: list[tuple[Any, Any]] = []
    current: Any = obj
    for elem in path:
        at = _locate(current, elem)
        if at is MISSING:
            return
        chain.append((current, at))
        current = current[at]
    for n, (container, at) in enumerate(reversed(chain)):
        child = container[at]
        is_item = isinstance(container, list)
        emptied = child in ({}, []) or (is_item and set(child) <= set(json.loads(path[len(chain) - n - 1][1])))
        if n == 0 or emptied:
            del container[at]
        else:
            break


# ---- managedFields -------------------------------------------------------------------------------------

def _fields_v1(paths: set[Path]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path in sorted(paths, key=repr):
        node = root
        for elem in path:
            node = node.setdefault(f"k:{elem[1]}" if isinstance(elem, tuple) else f"f:{elem}", {})
            if isinstance(elem, tuple):
                node.setdefault(".", {})
    return root


def _paths_from_v1(tree: dict[str, Any], prefix: Path = ()) -> set[Path]:
    children = {k: v for k, v in tree.items() if k != "."}
    if not children:
        return {prefix} if prefix else set()
    out: set[Path] = set()
    for k, v in children.items():
        out |= _paths_from_v1(v, (*prefix, ("k", k[2:]) if k.startswith("k:") else k[2:]))
    return out


def read_owners(obj: dict[str, Any] | None) -> Owners:
    entries = ((obj or {}).get("metadata") or {}).get("managedFields") or []
    return {(e["manager"], e["operation"]): _paths_from_v1(e.get("fieldsV1") or {}) for e in entries}


def write_owners(obj: dict[str, Any], owners: Owners, previous: dict[str, Any] | None) -> None:
    """Serialize ownership; an entry whose fields did not change keeps its timestamp, so a no-op apply
    leaves the object byte-for-byte identical (and the resourceVersion unbumped)."""
    old_entries = {(e["manager"], e["operation"]): e for e in
                   ((previous or {}).get("metadata") or {}).get("managedFields") or []}
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    entries = []
    for (manager, operation), paths in sorted(owners.items()):
        if not paths:
            continue
        fields = _fields_v1(paths)
        old = old_entries.get((manager, operation))
        if old and old.get("fieldsV1") == fields:
            entries.append(old)
        else:
            entries.append({"manager": manager, "operation": operation, "apiVersion": obj.get("apiVersion"),
                            "time": now, "fieldsType": "FieldsV1", "fieldsV1": fields})
    obj.setdefault("metadata", {})["managedFields"] = entries


def record_update(old: dict[str, Any] | None, new: dict[str, Any], manager: str) -> Owners:
    """An Update takes every field it changed from whoever owned it, without conflicts (as on a real server)."""
    owners = read_owners(old)
    new_paths, old_paths = owned_leaves(new), owned_leaves(old or {})
    changed = {p for p in new_paths if get_at(old or {}, p) != get_at(new, p)}
    gone = old_paths - new_paths
    for paths in owners.values():
        paths -= changed | gone
    mine = owners.setdefault((manager, "Update"), set())
    mine |= changed
    mine -= gone
    return owners


def _path_str(path: Path) -> str:
    out = ""
    for elem in path:
        if isinstance(elem, tuple):
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(elem[1]).items()) + "]"
        else:
            out += f".{elem}"
    return out


def server_side_apply(
    live: dict[str, Any], body: dict[str, Any], manager: str, *, force: bool
) -> tuple[dict[str, Any], Owners]:
    """Merge an apply configuration into the live object. Returns the new object and ownership, or raises
    409 when another manager owns a field this apply sets to a different value (unless forced)."""
    applied = owned_leaves(body)
    owners = read_owners(live)
    me = (manager, "Apply")
    conflicts = [(other, p) for other, paths in owners.items() if other[0] != manager
                 for p in paths & applied if get_at(live, p) != get_at(body, p)]
    if conflicts and not force:
        lines = [f'conflict with "{other[0]}"'
                 + (f' using {live.get("apiVersion")}' if other[1] == "Update" else "") + f": {_path_str(p)}"
                 for other, p in sorted(conflicts, key=repr)]
        head = f"Apply failed with {len(lines)} conflict{'s' if len(lines) > 1 else ''}: "
        raise ApiError(409, head + "\n".join(lines), details={
            "causes": [{"reason": "FieldManagerConflict", "message": line, "field": _path_str(p)}
                       for line, (_, p) in zip(lines, sorted(conflicts, key=repr), strict=True)]})
    for other, p in conflicts:
        owners[other].discard(p)
    others = set().union(*(paths for who, paths in owners.items() if who != me))
    merged = copy.deepcopy(live)
    dropped = owners.get(me, set()) - applied - others
    # Key fields last: an item is found by its key until its other fields are gone.
    for path in sorted(dropped, key=lambda p: len(p) >= 2 and isinstance(p[-2], tuple)):
        remove_at(merged, path)
    config = {k: v for k, v in body.items() if k not in ("apiVersion", "kind", "status", "metadata")}
    config["metadata"] = {k: v for k, v in (body.get("metadata") or {}).items() if k not in SYSTEM_METADATA}
    merged = strategic_merge(merged, config)
    owners[me] = applied
    return merged, owners
