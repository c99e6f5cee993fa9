"""Fault injection, sabotage, broker metrics and the standalone CLI, both in-process and through the
`/_sim/...` control endpoints another process would use."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from .sim_helpers import apply_sts, ready_replicas, statefulset, wait_until

ROOT = Path(__file__).resolve().parents[2]


def _control(cluster, method: str, path: str, body: dict | None = None) -> tuple[int, dict | str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(cluster.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            raw = response.read().decode()
            return response.status, json.loads(raw) if "json" in response.headers["Content-Type"] else raw
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_next_requests_fail_with_the_given_status(cluster, apps, ns):
    apply_sts(apps, ns, statefulset(replicas=1))
    cluster.faults.fail_next(2, status=500, verb="patch", resource="statefulsets")
    for _ in range(2):
        with pytest.raises(ApiException) as exc:
            apply_sts(apps, ns, statefulset(replicas=2))
        assert exc.value.status == 500 and json.loads(exc.value.body)["reason"] == "InternalError"
    assert apps.read_namespaced_stateful_set("broker", ns).spec.replicas == 1  # reads are unaffected
    assert apply_sts(apps, ns, statefulset(replicas=2)).spec.replicas == 2


@pytest.mark.parametrize(("status", "reason"), [(429, "TooManyRequests"), (503, "ServiceUnavailable")])
def test_throttling_and_unavailable(cluster, core, ns, status, reason):
    cluster.faults.fail_next(1, status=status, verb="list", resource="configmaps")
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_config_map(ns)
    assert exc.value.status == status and json.loads(exc.value.body)["reason"] == reason
    core.list_namespaced_config_map(ns)


def test_retry_after_makes_the_client_retry_transparently(cluster, core, ns):
    # urllib3 under the official client honours Retry-After on 429/503 (up to 3 times) before raising.
    cluster.faults.fail_next(2, status=429, verb="list", resource="configmaps", retry_after_s=0)
    core.list_namespaced_config_map(ns)
    assert cluster.faults.rules() == []
    cluster.faults.fail_next(5, status=429, verb="list", resource="configmaps", retry_after_s=0)
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_config_map(ns)
    assert exc.value.status == 429 and exc.value.headers["Retry-After"] == "0"


def test_error_rate_is_partial_and_reproducible(cluster, core, ns):
    cluster.faults.add(verb="get", resource="namespaces", status=500, rate=0.5)
    outcomes = []
    for _ in range(40):
        try:
            core.read_namespace(ns)
            outcomes.append(True)
        except ApiException as exc:
            assert exc.status == 500
            outcomes.append(False)
    assert 5 < outcomes.count(False) < 35  # seed 7 makes this the same sequence on every run
    cluster.faults.clear()
    core.read_namespace(ns)


def test_added_latency(cluster, core, ns):
    cluster.faults.add_latency(0.3, verb="get", resource="namespaces")
    started = time.monotonic()
    core.read_namespace(ns)
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    core.list_namespaced_config_map(ns)
    assert time.monotonic() - started < 0.3


def test_control_endpoints_drive_faults_and_sabotage(cluster, apps, core, ns):
    status, rule = _control(cluster, "POST", "/_sim/faults",
                            {"verb": "create", "resource": "configmaps", "status": 500, "count": 1})
    assert status == 201
    with pytest.raises(ApiException):
        core.create_namespaced_config_map(ns, {"metadata": {"name": "c"}})
    assert _control(cluster, "GET", "/_sim/faults")[1] == {"rules": []}  # the one-shot rule retired
    core.create_namespaced_config_map(ns, {"metadata": {"name": "c"}})
    assert _control(cluster, "POST", "/_sim/faults", {"bogus": 1})[0] == 400

    apply_sts(apps, ns, statefulset(replicas=1))
    assert _control(cluster, "PATCH", f"/_sim/objects/statefulsets/{ns}/broker", {"spec": {"replicas": 2}})[0] == 200
    with pytest.raises(ApiException) as exc:
        apply_sts(apps, ns, statefulset(replicas=1), force=False)
    assert 'conflict with "kubectl-edit"' in json.loads(exc.value.body)["message"]

    assert _control(cluster, "DELETE", f"/_sim/objects/configmaps/{ns}/c")[0] == 200
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_config_map("c", ns)
    assert exc.value.status == 404
    assert _control(cluster, "DELETE", "/_sim/objects/unknown/x")[0] == 404


def test_control_endpoints_for_readiness_and_pod_timeline(cluster, apps, ns):
    _control(cluster, "PUT", f"/_sim/readiness/{ns}", {"blocked": True, "prefix": "broker-0"})
    started = time.time()
    apply_sts(apps, ns, statefulset(replicas=1))
    wait_until(lambda: cluster.state.pod_events(ns))
    assert ready_replicas(apps, ns) == 0
    _control(cluster, "PUT", f"/_sim/readiness/{ns}", {"blocked": False, "prefix": "broker-0"})
    wait_until(lambda: ready_replicas(apps, ns) == 1)
    status, body = _control(cluster, "GET", f"/_sim/pod-events/{ns}?threshold=1&since={started}")
    assert status == 200 and [e["event"] for e in body["events"]] == ["created", "ready"]
    assert body["ready_below_seconds"] >= 0.1


def test_watch_gone_via_control_compaction(cluster, core, ns):
    old = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, {"metadata": {"name": "c"}})
    assert _control(cluster, "POST", "/_sim/compact")[0] == 200
    from kubernetes import watch

    with pytest.raises(ApiException) as exc:
        list(watch.Watch().stream(core.list_namespaced_config_map, ns, resource_version=old, timeout_seconds=1))
    assert exc.value.status == 410


def test_broker_metrics_follow_ready_pods_and_can_be_steered(cluster, apps, ns):
    status, idle = _control(cluster, "GET", f"/_sim/brokers/{ns}/metrics")
    assert status == 200 and idle["connections"] == 0 and idle["rule_engine_resource_status"] == "disconnected"
    apply_sts(apps, ns, statefulset(replicas=2))
    wait_until(lambda: ready_replicas(apps, ns) == 2)
    live = cluster.metrics.current(ns)
    assert 0 < live["connections"] <= live["max_connections"] == 2000
    assert live["messages_received_rate"] > 0 and live["nodes_running"] == 2

    status, pinned = _control(cluster, "PUT", f"/_sim/brokers/{ns}/metrics",
                              {"connections": 1950, "rule_engine_resource_status": "disconnected", "rule_failures": 7})
    assert status == 200 and pinned["connections"] == 1950 and pinned["rule_failures"] == 7
    assert _control(cluster, "GET", f"/_sim/brokers/{ns}/metrics")[1]["rule_engine_resource_status"] == "disconnected"
    status, text = _control(cluster, "GET", f"/_sim/brokers/{ns}/metrics?format=prometheus")
    assert f'emqx_connections_count{{namespace="{ns}"}} 1950' in text
    assert f'emqx_rule_engine_resource_connected{{namespace="{ns}"}} 0' in text

    assert _control(cluster, "POST", f"/_sim/brokers/{ns}/metrics", {"connections": None})[1]["connections"] < 1950
    assert _control(cluster, "DELETE", f"/_sim/brokers/{ns}/metrics")[1]["rule_failures"] == 0
    assert _control(cluster, "PUT", f"/_sim/brokers/{ns}/metrics", {"cpu": 1})[0] == 400
    assert _control(cluster, "GET", "/_sim/brokers/nowhere/metrics")[0] == 404


def test_cli_runs_standalone_and_writes_a_usable_kubeconfig(tmp_path):
    kubeconfig = tmp_path / "kubeconfig-sim.yaml"
    process = subprocess.Popen(
        [sys.executable, "-m", "k8s.simulator", "--host", "127.0.0.1", "--port", "0",
         "--kubeconfig", str(kubeconfig), "--ready-delay", "0.05"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(kubeconfig.exists, timeout=15)
        with config.new_client_from_config(config_file=str(kubeconfig)) as api:
            names = {n.metadata.name for n in client.CoreV1Api(api).list_namespace().items}
            assert {"default", "kube-system"} <= names
            assert client.VersionApi(api).get_code().git_version.startswith("v1.")
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert process.returncode == 0, output
    assert "simulated Kubernetes API at http://127.0.0.1:" in output


def test_vanished_namespace_takes_its_contents(cluster, core, ns):
    core.create_namespaced_config_map(ns, {"metadata": {"name": "c"}})
    assert _control(cluster, "DELETE", f"/_sim/objects/namespaces/{ns}")[0] == 200
    assert ns not in {n.metadata.name for n in core.list_namespace().items}
    assert core.list_config_map_for_all_namespaces(field_selector=f"metadata.namespace={ns}").items == []


def test_a_client_that_hangs_up_before_the_answer_is_no_error(cluster, ns, capfd):
    """A client whose request timed out (a loaded `make run`) closes its socket before a slow answer is written:
    the simulator drops that answer quietly, as an API server does, instead of printing a traceback."""
    import socket
    import struct
    from urllib.parse import urlsplit

    cluster.faults.add_latency(0.4, verb="get", resource="namespaces")
    address = urlsplit(cluster.url)
    for _ in range(3):
        with socket.create_connection((address.hostname, address.port), timeout=5) as sock:
            sock.sendall(f"GET /api/v1/namespaces/{ns} HTTP/1.1\r\nHost: sim\r\n\r\n".encode())
            time.sleep(0.1)
            # Linger 0: close with a reset, so the late answer meets a dead connection.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    time.sleep(0.8)
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err and "Exception occurred" not in captured.err
