"""Real MQTT brokers for the simulated cluster: one stand-in EMQX process per deployment namespace.

While a namespace's broker StatefulSet has a running pod, a broker process (``python -m k8s.simulator.broker``)
runs for it on a loopback address of its own (127.77.x.y, EMQX's standard ports), which is also the address
the simulated cloud load balancer hands out, so the deployment's endpoints are reachable by any MQTT client on
the machine. It runs with what a pod would read (``podview``): the bootstrap API keys, the TLS files, the
HTTP authenticator. Its users and rules live in a state directory per namespace that survives restarts, as
EMQX's data volume does. The kubelet calls a pod Ready only while the broker serves (EMQX's readiness
probe). No pod left (stopped, or every node gone): the process is stopped; the namespace
gone: its state and address are forgotten. A plan that changed (a new certificate, another authenticator)
restarts the process; scaling does not (clients keep a node to reconnect to, as with evacuation).

Counters: every few seconds the fleet reads each broker's ``/stats`` and ``/metrics`` through its management
API, so the simulator's metrics endpoint (``BrokerMetrics``) serves real connection counts and message rates.

The fleet's thread never holds the store's lock while it starts or stops processes; the kubelet (which holds
the store's lock) only asks it for addresses, under the fleet's own lock: store lock, then fleet lock, never
the other way round.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .broker.process import BrokerProcess, BrokerStartError, start_broker
from .podview import CONFIGMAPS, SECRETS, BrokerPlan, PodView, PodViewError
from .resources import NAMESPACES, PODS, STATEFULSETS
from .store import Store

log = logging.getLogger(__name__)

ADDRESS_PREFIX = "127.77"
BROKER_PORTS = {"mqtt_port": 1883, "ws_port": 8083, "mqtts_port": 8883, "wss_port": 8084, "api_port": 18083}
SAMPLE_EVERY_S = 5.0
SAMPLES_KEPT = 13  # one minute of samples: rates are averaged over up to a minute
RESTART_BACKOFF_S = (1, 2, 5, 10, 30)


@dataclass(frozen=True)
class CounterSample:
    at: float
    connections: int
    received: int
    sent: int
    dropped: int
    auth_failures: int


# A namespace whose pod configuration cannot be read holds the reason, with this prefix, where a digest would be.
PROBLEM = "problem: "


@dataclass
class RunningBroker:
    process: BrokerProcess | None
    plan_digest: str
    failures: int = 0
    retry_at: float = 0.0
    samples: deque[CounterSample] = field(default_factory=lambda: deque(maxlen=SAMPLES_KEPT))
    last_sample_at: float = 0.0


def _address_candidates(namespace: str) -> Iterator[str]:
    """Stable per namespace (the same address after a simulator restart), then further candidates."""
    for attempt in range(10_000):
        digest = hashlib.sha256(f"{namespace}/{attempt}".encode()).digest()
        yield f"{ADDRESS_PREFIX}.{digest[0]}.{digest[1] % 253 + 2}"


def _backoff(failures: int) -> float:
    return RESTART_BACKOFF_S[min(failures, len(RESTART_BACKOFF_S) - 1)]


def _ports_free(host: str) -> bool:
    for port in BROKER_PORTS.values():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


class BrokerFleet:
    def __init__(self, store: Store, root: str | os.PathLike[str], *, tick_s: float = 0.25,
                 sample_every_s: float = SAMPLE_EVERY_S, log_level: str = "WARNING") -> None:
        self.store = store
        self.root = Path(root)
        self.tick_s = tick_s
        self.sample_every_s = sample_every_s
        self.log_level = log_level
        self._lock = threading.Lock()
        self._addresses: dict[str, str] = {}
        self._brokers: dict[str, RunningBroker] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- what others ask -------------------------------------------------------------------------------

    def address(self, namespace: str) -> str:
        """The namespace's load-balancer address: picked once (free ports, not another namespace's), kept."""
        with self._lock:
            if namespace in self._addresses:
                return self._addresses[namespace]
            taken = set(self._addresses.values())
            for candidate in _address_candidates(namespace):
                if candidate not in taken and _ports_free(candidate):
                    self._addresses[namespace] = candidate
                    return candidate
        raise RuntimeError(f"no free loopback address for {namespace}")

    def broker(self, namespace: str) -> BrokerProcess | None:
        with self._lock:
            running = self._brokers.get(namespace)
            return running.process if running and running.process and running.process.alive() else None

    def serving(self, namespace: str) -> bool:
        """Whether the namespace's broker is up with the configuration its pods have now: what EMQX's readiness
        probe would say of a pod started with it. A broker still on an older configuration (until the next pass
        restarts it) does not count, or a pod would turn Ready on, say, a certificate it does not serve yet."""
        with self._lock:
            running = self._brokers.get(namespace)
        if running is None or running.process is None or not running.process.alive():
            return False
        plan = self.wanted_plan(namespace)
        return isinstance(plan, BrokerPlan) and plan.digest() == running.plan_digest

    def problem(self, namespace: str) -> str | None:
        """Why the namespace's broker cannot start (its pod's configuration is unusable), or None."""
        with self._lock:
            running = self._brokers.get(namespace)
            if running is None or running.process is not None or not running.plan_digest.startswith(PROBLEM):
                return None
            return running.plan_digest.removeprefix(PROBLEM)

    def counters(self, namespace: str) -> dict[str, float] | None:
        """Live figures of the namespace's broker from its latest samples, or None without a running broker."""
        with self._lock:
            running = self._brokers.get(namespace)
            samples = list(running.samples) if running and running.process else []
        if not samples:
            return None
        newest, oldest = samples[-1], samples[0]
        elapsed = newest.at - oldest.at

        def rate(attribute: str) -> float:
            if elapsed <= 0:
                return 0.0
            delta = getattr(newest, attribute) - getattr(oldest, attribute)
            return round(max(delta, 0) / elapsed, 2)

        return {"connections": newest.connections, "messages_received_rate": rate("received"),
                "messages_sent_rate": rate("sent"), "messages_dropped": newest.dropped,
                "authentication_failures": newest.auth_failures}

    # ---- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sim-brokers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
        with self._lock:
            brokers, self._brokers = dict(self._brokers), {}
        for running in brokers.values():
            if running.process:
                running.process.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            try:
                self.reconcile()
            except Exception:  # one broken namespace must not stop every other broker from being managed
                log.exception("simulated broker fleet pass failed")

    # ---- one pass --------------------------------------------------------------------------------------

    def wanted(self) -> tuple[dict[str, BrokerPlan | str], set[str]]:
        """(namespace -> plan, or why the pod cannot start; every namespace that exists), under the store's
        lock so the objects are read consistently."""
        plans: dict[str, BrokerPlan | str] = {}
        with self.store.lock:
            namespaces = {ns["metadata"]["name"] for ns in self.store.objects(NAMESPACES, copies=False)
                          if not ns["metadata"].get("deletionTimestamp")}
            for sts in self.store.objects(STATEFULSETS, copies=False):
                namespace = sts["metadata"]["namespace"]
                if namespace in namespaces and (plan := self._plan(sts)) is not None:
                    plans[namespace] = plan
        return plans, namespaces

    def wanted_plan(self, namespace: str) -> BrokerPlan | str | None:
        """The plan of one namespace's broker as its objects are now (``wanted`` for one namespace)."""
        with self.store.lock:
            for sts in self.store.objects(STATEFULSETS, namespace, copies=False):
                if (plan := self._plan(sts)) is not None:
                    return plan
        return None

    def _plan(self, sts: dict[str, Any]) -> BrokerPlan | str | None:
        """The broker a StatefulSet's pods want (or why they cannot have one); None while no pod is running
        (the kubelet then waits for the broker before calling a pod Ready). Called under the store's lock."""
        namespace = sts["metadata"]["namespace"]
        if not any(not p["metadata"].get("deletionTimestamp")
                   for p in self.store.objects(PODS, namespace, copies=False)):
            return None
        view = PodView((sts["spec"].get("template") or {}).get("spec") or {},
                       {c["metadata"]["name"]: c for c in self.store.objects(CONFIGMAPS, namespace)},
                       {s["metadata"]["name"]: s for s in self.store.objects(SECRETS, namespace)})
        try:
            return view.broker_plan()
        except PodViewError as exc:
            return str(exc)

    def reconcile(self) -> None:
        plans, namespaces = self.wanted()
        now = time.monotonic()
        with self._lock:
            current = dict(self._brokers)
        for namespace, unwanted in current.items():
            if namespace not in plans:
                self._retire(namespace, unwanted, forget=namespace not in namespaces)
        for namespace in list(self._addresses):
            if namespace not in namespaces and namespace not in current:
                with self._lock:
                    self._addresses.pop(namespace, None)
        for namespace, plan in plans.items():
            running = current.get(namespace)
            if isinstance(plan, str):
                if running is None or running.plan_digest != PROBLEM + plan:
                    log.warning("broker of %s cannot start: %s", namespace, plan)
                    with self._lock:
                        self._brokers[namespace] = RunningBroker(None, PROBLEM + plan)
                continue
            digest = plan.digest()
            healthy = running is not None and running.process is not None and running.process.alive()
            if healthy and running is not None and running.plan_digest == digest:
                self._sample(namespace, running, now)
                continue
            failures = 0
            if running is not None and running.plan_digest == digest:
                if running.process is not None:  # it was running and died: restart it after a backoff
                    log.warning("broker of %s exited with %s (its log: %s)", namespace, running.process.stop(),
                                self.root / namespace / "broker.log")
                    failures = running.failures + 1
                    with self._lock:
                        self._brokers[namespace] = RunningBroker(None, digest, failures, now + _backoff(failures))
                    continue
                if now < running.retry_at:
                    continue  # failed to start: wait for the backoff, like a container restart
                failures = running.failures
            elif running is not None and running.process is not None:
                running.process.stop()  # a new plan: restart with it
            self._launch(namespace, plan, digest, failures)

    def _launch(self, namespace: str, plan: BrokerPlan, digest: str, failures: int) -> None:
        directory = self.root / namespace
        directory.mkdir(parents=True, exist_ok=True)
        bootstrap = directory / "api_keys"
        bootstrap.write_text(plan.api_keys)
        bootstrap.chmod(0o600)
        kwargs: dict[str, Any] = dict(BROKER_PORTS)
        if plan.certfile and plan.keyfile:
            (directory / "tls.crt").write_text(plan.certfile)
            key = directory / "tls.key"
            key.write_text(plan.keyfile)
            key.chmod(0o600)
            kwargs.update(certfile=directory / "tls.crt", keyfile=key)
        if plan.http_authenticator is not None:
            authn = directory / "http_authenticator.json"
            authn.write_text(json.dumps(plan.http_authenticator.__dict__))
            authn.chmod(0o600)
            kwargs["http_authenticator"] = authn
        try:
            process = start_broker(self.address(namespace), bootstrap_file=bootstrap, state_dir=directory / "state",
                                   log_file=directory / "broker.log", log_level=self.log_level, **kwargs)
        except BrokerStartError as exc:
            if exc.address_in_use:
                # Somebody else took the address while the broker was down: pick another; the load balancer
                # follows (the kubelet re-reads `address`), and the deployment's endpoints on its next start.
                with self._lock:
                    self._addresses.pop(namespace, None)
            delay = _backoff(failures)
            log.warning("broker of %s did not start (retry in %ss): %s", namespace, delay, exc)
            with self._lock:
                self._brokers[namespace] = RunningBroker(None, digest, failures + 1, time.monotonic() + delay)
            return
        log.info("broker of %s listening on %s %s", namespace, process.host, process.ports)
        with self._lock:
            self._brokers[namespace] = RunningBroker(process, digest)

    def _retire(self, namespace: str, running: RunningBroker, *, forget: bool) -> None:
        if running.process is not None:
            running.process.stop()
            log.info("broker of %s stopped", namespace)
        with self._lock:
            self._brokers.pop(namespace, None)
            if forget:
                self._addresses.pop(namespace, None)
        if forget:
            shutil.rmtree(self.root / namespace, ignore_errors=True)

    def _sample(self, namespace: str, running: RunningBroker, now: float) -> None:
        if now - running.last_sample_at < self.sample_every_s or running.process is None:
            return
        running.last_sample_at = now
        try:
            stats_status, stats = running.process.request("GET", "/stats?aggregate=true", timeout=2)
            metrics_status, metrics = running.process.request("GET", "/metrics?aggregate=true", timeout=2)
        except OSError as exc:
            log.warning("could not read the counters of %s: %s", namespace, exc)
            return
        if stats_status != 200 or metrics_status != 200:
            return
        stats = stats[0] if isinstance(stats, list) else stats
        metrics = metrics[0] if isinstance(metrics, list) else metrics
        sample = CounterSample(now, int(stats.get("live_connections.count", 0)),
                               int(metrics.get("messages.received", 0)), int(metrics.get("messages.sent", 0)),
                               int(metrics.get("messages.dropped", 0)), int(metrics.get("client.auth.failure", 0)))
        with self._lock:
            running.samples.append(sample)
