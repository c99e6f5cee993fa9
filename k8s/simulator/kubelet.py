"""A background thread standing in for the kubelet and the controllers mqcloud relies on: the StatefulSet
controller (ordered pod creation, rolling updates from the highest ordinal down, scale-down from the top),
the cloud load-balancer controller, the disruption controller (PDB status), the garbage collector and the
namespace lifecycle controller.

Timing is what the product's promises are measured against, so every pod is unready for `ready_delay_s`
after it is created and terminating pods may linger for `terminate_delay_s`."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from . import selectors
from .faults import FaultInjector
from .resources import PDBS, PODS, SERVICES, STATEFULSETS
from .store import Store, is_ready, now_iso

log = logging.getLogger(__name__)


def template_revision(name: str, template: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
    return f"{name}-{digest}"


def _ordinal(pod: dict[str, Any]) -> int:
    return int(pod["metadata"]["name"].rsplit("-", 1)[1])


def _owner_uid(pod: dict[str, Any]) -> str | None:
    refs = pod["metadata"].get("ownerReferences") or []
    return next((r["uid"] for r in refs if r.get("controller")), None)


def _pod_status(pod: dict[str, Any], *, ready: bool) -> dict[str, Any]:
    name = pod["metadata"]["name"]
    digest = hashlib.sha256(f"{pod['metadata']['namespace']}/{name}".encode()).digest()
    started = (pod.get("status") or {}).get("startTime") or now_iso()
    flag = "True" if ready else "False"
    return {
        "phase": "Running",
        "podIP": f"10.244.{digest[0]}.{digest[1] or 1}",
        "hostIP": f"192.168.0.{_ordinal(pod) % 3 + 10}",
        "startTime": started,
        "conditions": [{"type": t, "status": s, "lastTransitionTime": started} for t, s in (
            ("PodScheduled", "True"), ("Initialized", "True"), ("ContainersReady", flag), ("Ready", flag))],
        "containerStatuses": [
            {"name": c["name"], "image": c.get("image", ""), "imageID": f"sim://{c.get('image', '')}",
             "ready": ready, "started": True, "restartCount": 0, "state": {"running": {"startedAt": started}}}
            for c in (pod.get("spec") or {}).get("containers") or []],
    }


def _resolve(value: int | str, total: int) -> int:
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(total * int(value[:-1]) / 100)
    return int(value)


class Kubelet:
    def __init__(self, store: Store, faults: FaultInjector, *, ready_delay_s: float = 0.2,
                 terminate_delay_s: float = 0.0, tick_s: float | None = None,
                 addresses: Callable[[str], str] | None = None,
                 broker_up: Callable[[str], bool] | None = None) -> None:
        self.store = store
        # With real brokers (k8s.simulator.fleet), a load balancer's address is its broker's loopback address,
        # and a pod is Ready only while the namespace's broker answers (what EMQX's readiness probe checks).
        self.addresses = addresses
        self.broker_up = broker_up
        self.faults = faults
        self.ready_delay_s = ready_delay_s
        self.terminate_delay_s = terminate_delay_s
        self.tick_s = tick_s or min(0.05, max(0.02, ready_delay_s / 10))
        # Deadlines by object uid (monotonic clock): when a pod may turn Ready, when a terminating pod is
        # gone, when a load balancer gets its address.
        self._ready_at: dict[str, float] = {}
        self._gone_at: dict[str, float] = {}
        self._lb_at: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sim-kubelet", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            try:
                self.reconcile()
            except Exception:  # a controller bug must not silently freeze the whole cluster
                log.exception("simulated controller pass failed")

    def reconcile(self) -> None:
        """One pass of every controller, atomically with respect to API requests."""
        with self.store.lock:
            now = time.monotonic()
            self.store.purge_terminated()
            owners = {s["metadata"]["uid"]: s for s in self.store.objects(STATEFULSETS, copies=False)}
            for pod in self.store.objects(PODS, copies=False):
                self._progress_pod(pod, owners, now)
            for sts in owners.values():
                self._reconcile_statefulset(sts, now)
            for svc in self.store.objects(SERVICES, copies=False):
                self._reconcile_service(svc, now)
            for pdb in self.store.objects(PDBS, copies=False):
                self._reconcile_pdb(pdb)

    # ---- pods ------------------------------------------------------------------------------------------

    def _progress_pod(self, pod: dict[str, Any], owners: dict[str, dict[str, Any]], now: float) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        if _owner_uid(pod) not in owners or (meta.get("deletionTimestamp") and now >= self._gone_at.get(uid, 0)):
            self.store.remove(PODS, meta["namespace"], meta["name"])  # garbage collection / termination done
            self._ready_at.pop(uid, None)
            self._gone_at.pop(uid, None)
            return
        if meta.get("deletionTimestamp") or is_ready(pod):
            return
        image = (((pod.get("spec") or {}).get("containers") or [{}])[0]).get("image", "")
        blocked = self.faults.readiness_blocked(meta["namespace"], meta["name"], image)
        if now >= self._ready_at.setdefault(uid, now + self.ready_delay_s) and not blocked and (
                self.broker_up is None or self.broker_up(meta["namespace"])):
            self.store.put(PODS, {**pod, "status": _pod_status(pod, ready=True)})

    def _create_pod(self, sts: dict[str, Any], ordinal: int, revision: str, now: float) -> None:
        meta, spec = sts["metadata"], sts["spec"]
        template = spec.get("template") or {}
        name = f"{meta['name']}-{ordinal}"
        labels = {**(template.get("metadata") or {}).get("labels", {}), "controller-revision-hash": revision,
                  "statefulset.kubernetes.io/pod-name": name, "apps.kubernetes.io/pod-index": str(ordinal)}
        pod: dict[str, Any] = {
            "metadata": {"name": name, "namespace": meta["namespace"], "labels": labels,
                         "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": meta["name"],
                                              "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}]},
            "spec": {**(template.get("spec") or {}), "hostname": name, "subdomain": spec.get("serviceName", ""),
                     "nodeName": f"sim-node-{ordinal % 3}"},
        }
        pod["status"] = _pod_status(pod, ready=False)
        created = self.store.put(PODS, pod)
        self._ready_at[created["metadata"]["uid"]] = now + self.ready_delay_s

    def _terminate_pod(self, pod: dict[str, Any], now: float) -> None:
        meta = pod["metadata"]
        if self.terminate_delay_s <= 0:
            self.store.remove(PODS, meta["namespace"], meta["name"])
            return
        dying = {**pod, "metadata": {**meta, "deletionTimestamp": now_iso()}, "status": _pod_status(pod, ready=False)}
        self.store.put(PODS, dying)
        self._gone_at[meta["uid"]] = now + self.terminate_delay_s

    # ---- StatefulSet controller ------------------------------------------------------------------------

    def _owned_pods(self, sts: dict[str, Any]) -> dict[int, dict[str, Any]]:
        uid = sts["metadata"]["uid"]
        pods = self.store.objects(PODS, sts["metadata"]["namespace"], copies=False)
        return {_ordinal(p): p for p in pods if _owner_uid(p) == uid}

    def _reconcile_statefulset(self, sts: dict[str, Any], now: float) -> None:
        spec = sts["spec"]
        replicas = spec.get("replicas", 1)
        update_rev = template_revision(sts["metadata"]["name"], spec.get("template") or {})
        pods = self._owned_pods(sts)

        def others_settled(ordinal: int | None) -> bool:
            # OrderedReady: act on one pod only while every other pod is Running, Ready and not terminating.
            return all(is_ready(p) and not p["metadata"].get("deletionTimestamp")
                       for o, p in pods.items() if o != ordinal)

        missing = [o for o in range(replicas) if o not in pods]
        live = {o: p for o, p in pods.items() if not p["metadata"].get("deletionTimestamp")}
        excess = sorted((o for o in live if o >= replicas), reverse=True)
        strategy = spec.get("updateStrategy") or {}
        partition = (strategy.get("rollingUpdate") or {}).get("partition", 0)
        outdated = sorted((o for o, p in live.items() if o < replicas and o >= partition
                           and p["metadata"]["labels"].get("controller-revision-hash") != update_rev), reverse=True)
        if spec.get("podManagementPolicy") == "Parallel":
            for o in missing:
                self._create_pod(sts, o, update_rev, now)
            for o in excess:
                self._terminate_pod(live[o], now)
        elif missing and others_settled(None):
            self._create_pod(sts, missing[0], update_rev, now)
        elif excess and others_settled(excess[0]):
            self._terminate_pod(live[excess[0]], now)
        if (not missing and not excess and outdated and strategy.get("type", "RollingUpdate") == "RollingUpdate"
                and others_settled(outdated[0])):
            # One pod at a time, highest ordinal first; the replacement is created by a later pass.
            self._terminate_pod(live[outdated[0]], now)
        self._write_statefulset_status(sts, update_rev)

    def _write_statefulset_status(self, sts: dict[str, Any], update_rev: str) -> None:
        replicas = sts["spec"].get("replicas", 1)
        status = sts.get("status") or {}
        live = [p for p in self._owned_pods(sts).values() if not p["metadata"].get("deletionTimestamp")]
        ready = sum(is_ready(p) for p in live)
        revisions = [p["metadata"]["labels"].get("controller-revision-hash") for p in live]
        updated = revisions.count(update_rev)
        current_rev = status.get("currentRevision") or update_rev
        if updated == ready == len(live) == replicas:
            current_rev = update_rev  # the rollout is complete
        new = {"observedGeneration": sts["metadata"].get("generation", 1), "replicas": len(live),
               "readyReplicas": ready, "availableReplicas": ready, "currentReplicas": revisions.count(current_rev),
               "updatedReplicas": updated, "currentRevision": current_rev, "updateRevision": update_rev,
               "collisionCount": 0}
        if new != status:
            self.store.set_status(STATEFULSETS, sts["metadata"]["namespace"], sts["metadata"]["name"], new)

    # ---- services and PDBs -----------------------------------------------------------------------------

    def _reconcile_service(self, svc: dict[str, Any], now: float) -> None:
        meta, status = svc["metadata"], svc.get("status") or {}
        has_ingress = bool((status.get("loadBalancer") or {}).get("ingress"))
        if (svc.get("spec") or {}).get("type") != "LoadBalancer":
            if has_ingress:
                self.store.set_status(SERVICES, meta["namespace"], meta["name"], {**status, "loadBalancer": {}})
            return
        if self.addresses is not None:
            ingress = {"ip": self.addresses(meta["namespace"])}
        else:
            ingress = {"hostname": f"{meta['name']}.{meta['namespace']}.lb.sim.mqcloud.localhost"}
        if has_ingress and status["loadBalancer"]["ingress"] != [ingress]:
            # The broker moved to another address (its own was taken while it was down): follow it.
            self.store.set_status(SERVICES, meta["namespace"], meta["name"],
                                  {**status, "loadBalancer": {"ingress": [ingress]}})
        elif not has_ingress and now >= self._lb_at.setdefault(meta["uid"], now + self.ready_delay_s):
            self.store.set_status(SERVICES, meta["namespace"], meta["name"],
                                  {**status, "loadBalancer": {"ingress": [ingress]}})

    def _reconcile_pdb(self, pdb: dict[str, Any]) -> None:
        meta, spec = pdb["metadata"], pdb.get("spec") or {}
        reqs = selectors.from_label_selector(spec.get("selector"))
        pods = [p for p in self.store.objects(PODS, meta["namespace"], copies=False)
                if not p["metadata"].get("deletionTimestamp")
                and reqs and selectors.labels_match(reqs, p["metadata"].get("labels"))]
        expected, healthy = len(pods), sum(is_ready(p) for p in pods)
        if "minAvailable" in spec:
            desired = _resolve(spec["minAvailable"], expected)
        else:
            desired = expected - _resolve(spec.get("maxUnavailable", 0), expected)
        new = {"observedGeneration": meta.get("generation", 1), "expectedPods": expected,
               "currentHealthy": healthy, "desiredHealthy": max(0, desired),
               "disruptionsAllowed": max(0, healthy - max(0, desired))}
        if new != pdb.get("status"):
            self.store.set_status(PDBS, meta["namespace"], meta["name"], new)
