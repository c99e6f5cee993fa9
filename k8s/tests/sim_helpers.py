"""Helpers for the simulator tests: polling (never fixed sleeps) and a broker-like StatefulSet manifest."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubernetes import client

APPLY = "application/apply-patch+yaml"


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def statefulset(name: str = "broker", *, replicas: int = 3, image: str = "emqx/emqx:5.8.0",
                labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "labels": {"app": name, **(labels or {})}},
        "spec": {
            "replicas": replicas, "serviceName": f"{name}-headless",
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [
                {"name": "emqx", "image": image, "ports": [{"name": "mqtt", "containerPort": 1883}],
                 "env": [{"name": "EMQX_NODE__COOKIE", "value": "c"}]}]}},
        },
    }


def apply_sts(apps: client.AppsV1Api, ns: str, body: dict[str, Any], *, manager: str = "mqcloud",
              force: bool = True) -> client.V1StatefulSet:
    return apps.patch_namespaced_stateful_set(body["metadata"]["name"], ns, body, field_manager=manager,
                                              force=force, _content_type=APPLY)


def ready_replicas(apps: client.AppsV1Api, ns: str, name: str = "broker") -> int:
    return apps.read_namespaced_stateful_set_status(name, ns).status.ready_replicas or 0
