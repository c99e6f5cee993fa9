"""Broker metrics per deployment namespace, shaped after EMQX's stats and metrics.

With real brokers (``k8s.simulator.fleet``), connections, message rates, drops and authentication failures
are the broker's own counters, so real clients move the charts and the alert rules. Without them (most
tests), plausible values that drift slowly. Either way they follow the number of Ready broker pods (a broker
that is down reports nothing), and tests can pin values to make an alert condition hold or clear."""

from __future__ import annotations

import hashlib
import math
import threading
import time
from typing import TYPE_CHECKING, Any

from .errors import bad_request
from .resources import NAMESPACES, PODS, STATEFULSETS
from .store import Store, is_ready, now_iso

if TYPE_CHECKING:
    from .fleet import BrokerFleet

MAX_CONNECTIONS_ANNOTATION = "mqcloud.io/max-connections"
RESOURCE_STATUSES = ("connected", "connecting", "disconnected")
# name → (Prometheus name, type, help)
METRICS = {
    "connections": ("emqx_connections_count", "gauge", "Connected MQTT clients"),
    "max_connections": ("emqx_connections_max", "gauge", "Connection limit of the deployment's spec"),
    "messages_received_rate": ("emqx_messages_received_rate", "gauge", "Messages in per second"),
    "messages_sent_rate": ("emqx_messages_sent_rate", "gauge", "Messages out per second"),
    "messages_dropped": ("emqx_messages_dropped", "counter", "Messages dropped since start"),
    "authentication_failures": ("emqx_authentication_failure", "counter", "Failed authentications since start"),
    "rule_failures": ("emqx_rules_failed", "counter", "Rule-engine action failures since start"),
    "rule_engine_resource_status": ("emqx_rule_engine_resource_connected", "gauge", "1 if connected"),
    "nodes_running": ("emqx_cluster_nodes_running", "gauge", "Ready broker nodes"),
}


class BrokerMetrics:
    def __init__(self, store: Store, fleet: BrokerFleet | None = None) -> None:
        self.store = store
        self.fleet = fleet
        self._lock = threading.Lock()
        self._overrides: dict[str, dict[str, Any]] = {}
        self._origin = time.time()  # counters count from the simulator's start, like a broker's uptime

    def current(self, namespace: str) -> dict[str, Any]:
        self.store.get(NAMESPACES, None, namespace)  # 404 for a namespace that is not (or no longer) there
        ready = sum(is_ready(p) for p in self.store.objects(PODS, namespace))
        capacity = 0
        for sts in self.store.objects(STATEFULSETS, namespace):
            annotated = (sts["metadata"].get("annotations") or {}).get(MAX_CONNECTIONS_ANNOTATION)
            capacity += int(annotated) if annotated else 1000 * sts["spec"].get("replicas", 1)
        now = time.time()
        phase = int(hashlib.sha256(namespace.encode()).hexdigest()[:4], 16) / 0xFFFF
        wave = math.sin(2 * math.pi * (now / 900 + phase))  # one slow swing every 15 minutes
        connections = int(capacity * (0.4 + 0.1 * wave)) if ready else 0
        received = round(connections * (0.5 + 0.05 * wave), 2)
        uptime = now - self._origin
        values: dict[str, Any] = {
            "connections": connections,
            "max_connections": capacity,
            "messages_received_rate": received,
            "messages_sent_rate": round(received * 1.5, 2),
            "messages_dropped": int(uptime * 0.05 * ready),
            "authentication_failures": int(uptime * 0.02 * ready),
            "rule_failures": 0,
            "rule_engine_resource_status": "connected" if ready else "disconnected",
            "nodes_running": ready,
        }
        live = self.fleet.counters(namespace) if self.fleet is not None and ready else None
        if live is not None:
            values.update(live)
        elif self.fleet is not None:
            values.update(connections=0, messages_received_rate=0.0, messages_sent_rate=0.0, messages_dropped=0,
                          authentication_failures=0)  # the broker is not up yet, or is down
        with self._lock:
            values.update(self._overrides.get(namespace, {}))
        return {"namespace": namespace, "timestamp": now_iso(), **values}

    def steer(self, namespace: str, values: dict[str, Any]) -> dict[str, Any]:
        """Pin some metrics to fixed values (None unpins one); returns the resulting current metrics."""
        unknown = set(values) - set(METRICS)
        if unknown:
            raise bad_request(f"unknown metrics {sorted(unknown)}; known: {sorted(METRICS)}")
        status = values.get("rule_engine_resource_status")
        if status is not None and status not in RESOURCE_STATUSES:
            raise bad_request(f"rule_engine_resource_status must be one of {RESOURCE_STATUSES}")
        self.current(namespace)
        with self._lock:
            pinned = self._overrides.setdefault(namespace, {})
            for key, value in values.items():
                if value is None:
                    pinned.pop(key, None)
                else:
                    pinned[key] = value
        return self.current(namespace)

    def reset(self, namespace: str | None = None) -> None:
        with self._lock:
            if namespace is None:
                self._overrides.clear()
            else:
                self._overrides.pop(namespace, None)

    def prometheus(self, namespace: str) -> str:
        """The same values in the Prometheus text format a broker's /metrics endpoint serves."""
        values = self.current(namespace)
        lines = []
        for key, (name, kind, help_text) in METRICS.items():
            value = values[key]
            if key == "rule_engine_resource_status":
                value = int(value == "connected")
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}",
                      f'{name}{{namespace="{namespace}"}} {value}']
        return "\n".join(lines) + "\n"
