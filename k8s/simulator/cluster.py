"""`SimulatedCluster`: the fake API server, its controllers, fault injection and broker metrics behind one
object that tests start in-process and `python -m k8s.simulator` runs standalone."""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
from collections import Counter, deque
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import yaml

from . import apply
from .api import ApiRouter
from .control import ControlRouter
from .faults import FaultInjector
from .fleet import BrokerFleet
from .kubelet import Kubelet
from .metrics import BrokerMetrics
from .resources import BY_PLURAL, NAMESPACES
from .server import SimulatorHTTPServer
from .store import MERGE_PATCH, Store

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public")
_NAMESPACE_IN_PATH = re.compile(r"/namespaces/([^/]+)")


class SimulatedCluster:
    """A stateful stand-in for one Kubernetes cluster, on loopback.

    `state` is the object store (with the pod readiness timeline), `faults` the fault injector, `metrics`
    the broker metrics, `kubelet` the simulated controllers, `fleet` (with `brokers_dir`) the real broker
    processes of Ready broker pods."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, ready_delay_s: float = 0.2,
                 terminate_delay_s: float = 0.0, namespace_delete_delay_s: float = 0.5, watch_history: int = 2000,
                 seed: int | None = None, brokers_dir: str | os.PathLike[str] | None = None,
                 broker_sample_s: float = 5.0) -> None:
        self._address = (host, port)
        self.state = Store(watch_history=watch_history, namespace_delete_delay_s=namespace_delete_delay_s)
        self.faults = FaultInjector(seed)
        # Real MQTT brokers for Ready broker pods (``make run``, end-to-end tests); others stay on paper.
        self.fleet = (BrokerFleet(self.state, brokers_dir, sample_every_s=broker_sample_s)
                      if brokers_dir is not None else None)
        self.metrics = BrokerMetrics(self.state, self.fleet)
        self.kubelet = Kubelet(self.state, self.faults, ready_delay_s=ready_delay_s,
                               terminate_delay_s=terminate_delay_s,
                               addresses=self.fleet.address if self.fleet else None,
                               broker_up=self.fleet.serving if self.fleet else None)
        self.api = ApiRouter(self.state, self.faults)
        self.control = ControlRouter(self)
        self._httpd: SimulatorHTTPServer | None = None
        # Kubernetes API requests served, per (method, namespace): benchmarks compare them to the minimum.
        self._api_calls: Counter[tuple[str, str]] = Counter()
        self._api_call_times: deque[float] = deque(maxlen=100_000)
        self._api_calls_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        for name in BUILTIN_NAMESPACES:
            self.state.create(NAMESPACES, None, {"metadata": {"name": name}}, manager="kube-apiserver")

    # ---- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> SimulatedCluster:
        self.state.closed = False
        self._httpd = SimulatorHTTPServer(self._address, self)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="sim-apiserver", daemon=True)
        self._thread.start()
        self.kubelet.start()
        if self.fleet:
            self.fleet.start()
        return self

    def stop(self) -> None:
        self.kubelet.stop()
        if self.fleet:
            self.fleet.stop()
        self.state.close()  # ends open watch streams
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> SimulatedCluster:
        return self.start() if self._httpd is None else self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the simulated cluster is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"  # type: ignore[str-bytes-safe]  # an AF_INET server's host is a str

    # ---- clients ---------------------------------------------------------------------------------------

    def api_client(self) -> ApiClient:
        """An official-client ApiClient pointed at this cluster (imported lazily: the server needs no client)."""
        from kubernetes import client

        configuration = client.Configuration(host=self.url)
        return client.ApiClient(configuration)

    def kubeconfig(self, *, context: str = "mqcloud-sim") -> dict[str, Any]:
        return {
            "apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": context,
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            # The simulator ignores credentials; a token keeps the client's auth code on its usual path.
            "users": [{"name": context, "user": {"token": "simulated"}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context, "namespace": "default"}}],
        }

    def write_kubeconfig(self, path: str | os.PathLike[str], *, context: str = "mqcloud-sim") -> Path:
        """Write atomically, so a process polling for the file never reads half of it."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".kubeconfig-")
        with os.fdopen(fd, "w") as fh:
            yaml.safe_dump(self.kubeconfig(context=context), fh, sort_keys=False)
        os.replace(tmp, target)
        return target

    # ---- accounting ------------------------------------------------------------------------------------

    def record_api_call(self, method: str, path: str) -> None:
        match = _NAMESPACE_IN_PATH.search(path)
        with self._api_calls_lock:
            self._api_calls[(method, match.group(1) if match else "")] += 1
            self._api_call_times.append(time.monotonic())

    def api_calls(self, *, namespace: str | None = None, method: str | None = None) -> int:
        """Kubernetes API requests served so far (a namespace's own object counts as in it)."""
        with self._api_calls_lock:
            return sum(count for (m, ns), count in self._api_calls.items()
                       if (namespace is None or ns == namespace) and (method is None or m == method))

    def busiest_second(self) -> int:
        """The most requests the server received within any one second: what a client-side rate limit caps."""
        with self._api_calls_lock:
            times = list(self._api_call_times)
        busiest, start = 0, 0
        for end, at in enumerate(times):
            while at - times[start] >= 1.0:
                start += 1
            busiest = max(busiest, end - start + 1)
        return busiest

    def reset_api_calls(self) -> None:
        with self._api_calls_lock:
            self._api_calls.clear()
            self._api_call_times.clear()

    # ---- sabotage --------------------------------------------------------------------------------------

    def vanish(self, resource: str, namespace: str | None, name: str) -> None:
        """Delete an object behind everyone's back: no API call, no fault rules, no grace period. A namespace
        goes at once with everything in it."""
        if resource == NAMESPACES.plural:
            self.state.purge_namespace(name)
        else:
            self.state.remove(BY_PLURAL[resource], namespace, name)

    def edit(self, resource: str, namespace: str | None, name: str, patch: dict[str, Any], *,
             manager: str = "kubectl-edit") -> dict[str, Any]:
        """Change fields by hand, as `kubectl edit` would: an Update that takes ownership of what it changes,
        so mqcloud's next server-side apply of those fields conflicts unless forced."""
        rt = BY_PLURAL[resource]
        if rt.read_only:  # pods: the kubelet's objects, edited without admission
            obj = self.state.get(rt, namespace, name)
            return self.state.put(rt, apply.merge_patch(obj, patch))
        obj, _ = self.state.patch(rt, namespace, name, MERGE_PATCH, patch, manager=manager)
        return obj

    def reset_faults(self) -> None:
        """Clear fault rules, readiness blocks and pinned metrics (objects stay)."""
        self.faults.clear()
        self.metrics.reset()
