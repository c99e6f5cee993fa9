"""PATCH (RFC 7644 §3.5.2): each operation is applied to the resource's JSON, which is then stored like a PUT,
so a PATCH can change nothing a PUT could not, and both go through the same service."""

from __future__ import annotations

import copy
import re
from typing import Any

from projects.scim import schemas as sc
from projects.scim.errors import ScimError
from projects.scim.filters import filter_matches, parse_filter

_PATH_RE = re.compile(r'^(?P<attr>[^\[\].]+)(?:\[(?P<filter>.*)\])?(?:\.(?P<sub>[^\[\].]+))?$')


def _find_key(container: dict, name: str) -> str:
    for key in container:
        if key.lower() == name.lower():
            return key
    return name


def _merge(target: dict, value: dict, op: str) -> None:
    for name, new in value.items():
        if name.lower().startswith("urn:") and isinstance(new, dict):
            # An extension's attributes, or a core schema's named in full.
            if name in (sc.USER_SCHEMA, sc.GROUP_SCHEMA):
                _merge(target, new, op)
            else:
                _merge(target.setdefault(name, {}), new, op)
            continue
        key = _find_key(target, name)
        if op == "add" and isinstance(new, list) and isinstance(target.get(key), list):
            target[key] = target[key] + [item for item in new if item not in target[key]]
        elif isinstance(new, dict) and isinstance(target.get(key), dict):
            _merge(target[key], new, op)
        else:
            target[key] = new


def apply_patch_operation(document: dict, operation: Any) -> None:
    if not isinstance(operation, dict):
        raise ScimError(400, "Each operation is an object.", scim_type="invalidSyntax")
    op = str(operation.get("op", "")).lower()
    if op not in ("add", "replace", "remove"):
        raise ScimError(400, f"Unknown operation {operation.get('op')!r}.", scim_type="invalidSyntax")
    path = operation.get("path")
    value = operation.get("value")
    if not path:
        if op == "remove":
            raise ScimError(400, "remove needs a path.", scim_type="noTarget")
        if not isinstance(value, dict):
            raise ScimError(400, "Without a path the value is an object of attributes.", scim_type="invalidValue")
        _merge(document, value, op)
        return
    target = document
    if path.lower().startswith("urn:"):
        urn, _, rest = path.rpartition(":")
        if urn in (sc.USER_SCHEMA, sc.GROUP_SCHEMA):
            path = rest
        else:
            target = document.setdefault(urn, {})
            path = rest
    match = _PATH_RE.match(path)
    if match is None:
        raise ScimError(400, f"Cannot read the path {path!r}.", scim_type="invalidPath")
    attr, value_filter, sub = match["attr"], match["filter"], match["sub"]
    key = _find_key(target, attr)
    if value_filter is not None:
        node = parse_filter(value_filter)
        items = target.get(key) or []
        selected = [item for item in items if isinstance(item, dict) and filter_matches(node, item)]
        if not selected:
            if op == "remove":
                return
            raise ScimError(400, f"No value of {attr} matches {value_filter!r}.", scim_type="noTarget")
        for item in selected:
            if op == "remove":
                if sub:
                    item.pop(_find_key(item, sub), None)
                else:
                    items.remove(item)
            elif sub:
                item[_find_key(item, sub)] = value
            elif isinstance(value, dict):
                item.update(value)
        target[key] = items
        return
    if sub:
        parent = target.setdefault(key, {})
        if not isinstance(parent, dict):
            raise ScimError(400, f"{attr} has no sub-attributes.", scim_type="invalidPath")
        if op == "remove":
            parent.pop(_find_key(parent, sub), None)
        else:
            parent[_find_key(parent, sub)] = value
        return
    if op == "remove":
        if value is not None and isinstance(target.get(key), list):
            # Azure AD removes members by value with a body instead of a filter.
            drop = [v.get("value") for v in (value if isinstance(value, list) else [value]) if isinstance(v, dict)]
            target[key] = [item for item in target[key] if item.get("value") not in drop]
        else:
            target.pop(key, None)
        return
    if op == "add" and isinstance(target.get(key), list):
        additions = value if isinstance(value, list) else [value]
        target[key] = target[key] + [item for item in additions if item not in target[key]]
    elif isinstance(value, dict) and isinstance(target.get(key), dict):
        _merge(target[key], value, op)
    else:
        target[key] = copy.deepcopy(value)


