"""Maps Kubernetes REST paths and verbs onto the store: discovery, get/list/watch, create, replace, the
four patch flavours and delete, with fault injection applied per verb and resource like a sick cluster."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from . import resources
from .errors import ApiError, bad_request
from .faults import FaultInjector
from .resources import ResourceType
from .store import APPLY_PATCH, Store

NOT_FOUND = "the server could not find the requested resource"


@dataclass
class Response:
    code: int
    body: Any = None  # dict → JSON, str → text
    headers: dict[str, str] = field(default_factory=dict)
    stream: Iterator[dict[str, Any]] | None = None  # watch events, one JSON line each


def truthy(value: str | None) -> bool:
    # The client serialises booleans as "True"; kubectl sends "true".
    return (value or "").lower() in ("true", "1")


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError as exc:
        raise bad_request(f"request body is not valid JSON: {exc}") from exc


def discovery(segments: list[str]) -> dict[str, Any] | None:
    if segments == ["version"]:
        return resources.VERSION_INFO
    if segments == ["api"]:
        return resources.core_versions()
    if segments == ["apis"]:
        return resources.group_list()
    if len(segments) == 2 and segments[0] == "api":
        return resources.resource_list("", segments[1])
    if len(segments) == 2 and segments[0] == "apis":
        return resources.group(segments[1])
    if len(segments) == 3 and segments[0] == "apis":
        return resources.resource_list(segments[1], segments[2])
    return None


def parse_target(segments: list[str]) -> tuple[ResourceType, str | None, str | None, str | None]:
    """`/apis/apps/v1/namespaces/x/statefulsets/web/scale` → (statefulsets, "x", "web", "scale")."""
    if segments[:1] == ["api"] and len(segments) >= 3:
        group, version, rest = "", segments[1], segments[2:]
    elif segments[:1] == ["apis"] and len(segments) >= 4:
        group, version, rest = segments[1], segments[2], segments[3:]
    else:
        raise ApiError(404, NOT_FOUND)
    namespace = None
    inner = resources.lookup(group, version, rest[2]) if rest[0] == "namespaces" and len(rest) >= 3 else None
    if inner is not None and inner.namespaced:
        namespace, rest = rest[1], rest[2:]
    rt = resources.lookup(group, version, rest[0])
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if rt is None or len(rest) > 3 or (sub and sub not in rt.subresources) or (rt.namespaced and name and
                                                                              namespace is None):
        raise ApiError(404, NOT_FOUND)
    return rt, namespace, name, sub


class ApiRouter:
    def __init__(self, store: Store, faults: FaultInjector) -> None:
        self.store = store
        self.faults = faults

    def route(self, method: str, path: str, query: dict[str, str], raw: bytes, headers: dict[str, str],
              ) -> Response:
        segments = [s for s in path.split("/") if s]
        if method == "GET" and (doc := discovery(segments)) is not None:
            return Response(200, doc)
        rt, namespace, name, sub = parse_target(segments)
        verb = {"GET": "get" if name else "watch" if truthy(query.get("watch")) else "list",
                "POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete" if name else "deletecollection"}.get(method)
        if (verb is None or (verb == "create" and name) or (verb in ("update", "patch") and not name)
                or (sub and verb not in ("get", "update", "patch"))):
            raise ApiError(405, f"{method} is not supported on {path}")
        if query.get("dryRun"):
            raise bad_request("the simulator does not support dryRun")
        latency, error = self.faults.decide(verb, rt.plural + (f"/{sub}" if sub else ""), namespace)
        if latency:
            time.sleep(latency)
        if error:
            raise error
        return getattr(self, f"_{verb}")(rt, namespace, name, sub, query, raw, headers)

    @staticmethod
    def _manager(query: dict[str, str], headers: dict[str, str]) -> str:
        # Without fieldManager a real server names the manager after the client binary (the User-Agent).
        return query.get("fieldManager") or (headers.get("user-agent") or "unknown").split("/")[0]

    def _present(self, obj: dict[str, Any], sub: str | None) -> dict[str, Any]:
        return self.store.scale_view(obj) if sub == "scale" else obj

    def _get(self, rt: ResourceType, ns: str | None, name: str, sub: str | None, *_: Any) -> Response:
        return Response(200, self._present(self.store.get(rt, ns, name), sub))

    def _list(self, rt: ResourceType, ns: str | None, name: None, sub: None, query: dict[str, str], *_: Any,
              ) -> Response:
        return Response(200, self.store.list(rt, ns, label_selector=query.get("labelSelector"),
                                             field_selector=query.get("fieldSelector")))

    def _watch(self, rt: ResourceType, ns: str | None, name: None, sub: None, query: dict[str, str], *_: Any,
               ) -> Response:
        stream = self.store.watch(rt, ns, label_selector=query.get("labelSelector"),
                                  field_selector=query.get("fieldSelector"),
                                  resource_version=query.get("resourceVersion"),
                                  timeout_s=float(query.get("timeoutSeconds") or 300))
        return Response(200, stream=stream)

    def _create(self, rt: ResourceType, ns: str | None, name: None, sub: None, query: dict[str, str], raw: bytes,
                headers: dict[str, str]) -> Response:
        body = parse_json(raw)
        if not isinstance(body, dict):
            raise bad_request("request body must be an object")
        return Response(201, self.store.create(rt, ns, body, manager=self._manager(query, headers)))

    def _update(self, rt: ResourceType, ns: str | None, name: str, sub: str | None, query: dict[str, str],
                raw: bytes, headers: dict[str, str]) -> Response:
        obj = self.store.replace(rt, ns, name, parse_json(raw), manager=self._manager(query, headers),
                                 subresource=sub)
        return Response(200, self._present(obj, sub))

    def _patch(self, rt: ResourceType, ns: str | None, name: str, sub: str | None, query: dict[str, str],
               raw: bytes, headers: dict[str, str]) -> Response:
        content_type = (headers.get("content-type") or "").split(";")[0].strip().lower()
        if content_type == APPLY_PATCH:
            try:
                patch = yaml.safe_load(raw or b"")  # JSON is YAML, so this reads what the client sends too
            except yaml.YAMLError as exc:
                raise bad_request(f"apply configuration is not valid YAML: {exc}") from exc
            manager = query.get("fieldManager")
        else:
            patch, manager = parse_json(raw), self._manager(query, headers)
        obj, created = self.store.patch(rt, ns, name, content_type, patch, manager=manager,
                                        force=truthy(query.get("force")), subresource=sub)
        return Response(201 if created else 200, self._present(obj, sub))

    def _delete(self, rt: ResourceType, ns: str | None, name: str, sub: str | None, query: dict[str, str],
                raw: bytes, *_: Any) -> Response:
        options = parse_json(raw) if raw else {}
        return Response(200, self.store.delete(rt, ns, name, (options or {}).get("preconditions")))

    def _deletecollection(self, rt: ResourceType, ns: str | None, name: None, sub: None, query: dict[str, str],
                          *_: Any) -> Response:
        doomed = self.store.list(rt, ns, label_selector=query.get("labelSelector"),
                                 field_selector=query.get("fieldSelector"))
        for obj in doomed["items"]:
            self.store.delete(rt, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        return Response(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})
