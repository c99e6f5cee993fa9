"""A watch cache of a cluster's broker StatefulSets and Services, as controllers keep one (client-go's
informers): one LIST, then a WATCH from its resource version, per kind, for the whole cluster, by our label.

Provisioning reads a deployment's rollout and load-balancer address from here instead of asking the API
server on every step (two GETs a poll). Until the first LIST is in, or while the watch is broken and being
re-listed, the cache says it is not ``synced`` and callers ask the API server as before.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

MANAGED_SELECTOR = "app.kubernetes.io/managed-by=mqcloud"
WATCH_TIMEOUT_S = 30  # a watch ends and is renewed this often (a stop is noticed at the latest then)
RELIST_BACKOFF_S = (0.5, 1, 2, 5, 10)

# kind → (typed API class, the method listing it across namespaces)
WATCHED: dict[str, tuple[type, str]] = {
    "StatefulSet": (client.AppsV1Api, "list_stateful_set_for_all_namespaces"),
    "Service": (client.CoreV1Api, "list_service_for_all_namespaces"),
}


class _KindWatch:
    def __init__(self, api_client: client.ApiClient, kind: str, stopping: threading.Event) -> None:
        api_class, method = WATCHED[kind]
        self.kind = kind
        self.list = getattr(api_class(api_client), method)
        self.stopping = stopping
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.synced = False
        self.lock = threading.Lock()
        self.watch = watch.Watch()
        self.thread = threading.Thread(target=self._run, name=f"k8s-watch-{kind}", daemon=True)

    def _relist(self) -> str:
        response = self.list(label_selector=MANAGED_SELECTOR, _preload_content=False, _request_timeout=(5, 30))
        body = json.loads(response.data or b"{}")
        with self.lock:
            self.objects = {(o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
                            for o in body.get("items") or []}
            self.synced = True
        return str((body.get("metadata") or {}).get("resourceVersion") or "")

    def _apply(self, event: dict[str, Any]) -> None:
        obj = event["raw_object"]
        key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        with self.lock:
            if event["type"] == "DELETED":
                self.objects.pop(key, None)
            else:
                self.objects[key] = obj

    def _run(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            try:
                version = self._relist()
                failures = 0
                while not self.stopping.is_set():
                    for event in self.watch.stream(self.list, label_selector=MANAGED_SELECTOR,
                                                   resource_version=version, timeout_seconds=WATCH_TIMEOUT_S,
                                                   allow_watch_bookmarks=False):
                        if event["type"] == "ERROR":
                            raise ApiException(status=(event["raw_object"] or {}).get("code", 500),
                                               reason="watch error")
                        self._apply(event)
                        version = self.watch.resource_version or version
                    if self.stopping.is_set():
                        return
            except Exception as exc:  # 410 Gone, a dropped connection, a server error: list again
                with self.lock:
                    self.synced = False
                if self.stopping.is_set():
                    return
                delay = RELIST_BACKOFF_S[min(failures, len(RELIST_BACKOFF_S) - 1)]
                failures += 1
                log.info("watch of %s lost (%s); listing again in %ss", self.kind, exc, delay)
                self.stopping.wait(delay)


class ClusterWatch:
    """The cache of one cluster; ``start`` it once, ``stop`` it when the client goes."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._stopping = threading.Event()
        self._kinds = {kind: _KindWatch(api_client, kind, self._stopping) for kind in WATCHED}

    def start(self) -> ClusterWatch:
        for kind in self._kinds.values():
            kind.thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        for kind in self._kinds.values():
            kind.watch.stop()

    @property
    def synced(self) -> bool:
        return all(kind.synced for kind in self._kinds.values())

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        watched = self._kinds[kind]
        with watched.lock:
            return watched.objects.get((namespace, name))
