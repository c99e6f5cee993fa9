"""`/_sim/...` control endpoints (JSON), so another process (`make run`'s ops site, a Celery worker) can
drive the same fault injection, sabotage and metrics steering tests use in-process. Each endpoint is a thin
shim over a SimulatedCluster method, so the two ways of steering cannot drift apart.

    GET    /_sim/healthz
    GET    /_sim/faults                          list rules
    POST   /_sim/faults                          add {verb, resource, namespace, status, rate, count, latency_s,
                                                      retry_after_s, message}
    DELETE /_sim/faults[/<id>]                   clear all (and readiness blocks) / one rule
    PUT    /_sim/readiness/<ns>                  {"blocked": true, "prefix": "broker-"}: pods never turn Ready
    POST   /_sim/compact                         forget watch history (watches from older versions get 410)
    DELETE /_sim/objects/<plural>/[<ns>/]<name>  make an object vanish behind the controller's back
    PATCH  /_sim/objects/<plural>/[<ns>/]<name>  hand-edit (JSON merge patch, ?fieldManager=, default kubectl-edit)
    GET    /_sim/pod-events/<ns>                 readiness timeline; with ?threshold=N[&since=&until=&prefix=]
                                                 also the seconds fewer than N pods were ready
    GET    /_sim/brokers/<ns>/metrics            EMQX-like metrics (?format=prometheus for the text format)
    PUT|POST /_sim/brokers/<ns>/metrics          pin values {"connections": 900, ...}; null unpins
    DELETE /_sim/brokers/<ns>/metrics            unpin all
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .api import Response, parse_json
from .errors import ApiError, bad_request
from .resources import BY_PLURAL

if TYPE_CHECKING:
    from .cluster import SimulatedCluster

FAULT_FIELDS = ("verb", "resource", "namespace", "status", "rate", "count", "latency_s", "message", "retry_after_s")


class ControlRouter:
    def __init__(self, cluster: SimulatedCluster) -> None:
        self.cluster = cluster

    def route(self, method: str, path: str, query: dict[str, str], raw: bytes, headers: dict[str, str],
              ) -> Response:
        parts = [p for p in path.split("/") if p][1:]
        head = parts[0] if parts else ""
        handler = getattr(self, f"_{head.replace('-', '_')}", None)
        if handler is None:
            raise ApiError(404, f"unknown control endpoint {path}")
        body = parse_json(raw) if raw else {}
        return handler(method, parts[1:], query, body, headers)

    def _healthz(self, method: str, rest: list[str], *_: Any) -> Response:
        return Response(200, {"ok": True, "url": self.cluster.url})

    def _faults(self, method: str, rest: list[str], query: dict[str, str], body: Any, *_: Any) -> Response:
        faults = self.cluster.faults
        if method == "GET":
            return Response(200, {"rules": faults.rules()})
        if method == "POST":
            unknown = set(body) - set(FAULT_FIELDS)
            if unknown:
                raise bad_request(f"unknown fault fields {sorted(unknown)}; known: {FAULT_FIELDS}")
            rule = faults.add(**body)
            return Response(201, {"id": rule.id})
        if method == "DELETE":
            faults.remove(int(rest[0])) if rest else faults.clear()
            return Response(200, {"rules": faults.rules()})
        raise ApiError(405, "use GET, POST or DELETE")

    def _readiness(self, method: str, rest: list[str], query: dict[str, str], body: Any, *_: Any) -> Response:
        if method != "PUT" or len(rest) != 1:
            raise ApiError(405, "PUT /_sim/readiness/<namespace>")
        prefix = body.get("prefix", "")
        if body.get("blocked", True):
            self.cluster.faults.block_readiness(rest[0], prefix)
        else:
            self.cluster.faults.unblock_readiness(rest[0], prefix)
        return Response(200, {"namespace": rest[0], "prefix": prefix, "blocked": bool(body.get("blocked", True))})

    def _compact(self, method: str, *_: Any) -> Response:
        self.cluster.state.compact()
        return Response(200, {"ok": True})

    def _objects(self, method: str, rest: list[str], query: dict[str, str], body: Any, *_: Any) -> Response:
        rt = BY_PLURAL.get(rest[0]) if rest else None
        if rt is None or len(rest) != (3 if rt.namespaced else 2):
            raise ApiError(404, "use /_sim/objects/<plural>/[<namespace>/]<name>")
        namespace, name = (rest[1], rest[2]) if rt.namespaced else (None, rest[1])
        if method == "DELETE":
            self.cluster.vanish(rt.plural, namespace, name)
            return Response(200, {"ok": True})
        if method == "PATCH":
            return Response(200, self.cluster.edit(rt.plural, namespace, name, body,
                                                   manager=query.get("fieldManager", "kubectl-edit")))
        raise ApiError(405, "use DELETE (vanish) or PATCH (hand edit)")

    def _pod_events(self, method: str, rest: list[str], query: dict[str, str], *_: Any) -> Response:
        if len(rest) != 1:
            raise ApiError(404, "use /_sim/pod-events/<namespace>")
        result: dict[str, Any] = {"events": self.cluster.state.pod_events(rest[0])}
        if "threshold" in query:
            result["ready_below_seconds"] = self.cluster.state.ready_below_seconds(
                rest[0], int(query["threshold"]), since=float(query.get("since", 0)),
                until=float(query["until"]) if "until" in query else time.time(), prefix=query.get("prefix", ""))
        return Response(200, result)

    def _brokers(self, method: str, rest: list[str], query: dict[str, str], body: Any, headers: dict[str, str],
                 ) -> Response:
        if len(rest) != 2 or rest[1] != "metrics":
            raise ApiError(404, "use /_sim/brokers/<namespace>/metrics")
        metrics, namespace = self.cluster.metrics, rest[0]
        if method == "GET":
            if query.get("format") == "prometheus" or "text/plain" in (headers.get("accept") or ""):
                return Response(200, metrics.prometheus(namespace))
            return Response(200, metrics.current(namespace))
        if method in ("PUT", "POST"):
            if not isinstance(body, dict):
                raise bad_request("body must be an object of metric values")
            return Response(200, metrics.steer(namespace, body))
        if method == "DELETE":
            metrics.reset(namespace)
            return Response(200, metrics.current(namespace))
        raise ApiError(405, "use GET, PUT/POST or DELETE")
