"""The simulated cluster's real brokers (``brokers_dir``): a Ready broker pod gets a real MQTT broker process
on its load balancer's loopback address, configured from what the pod would read (the rendered emqx.conf,
its ConfigMap and Secret), stopped with its last pod, and counted in the metrics endpoint."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.dynamic import DynamicClient

from k8s.render import SECRET_FILES_DIR, BrokerClusterSpec, render
from k8s.simulator import SimulatedCluster
from k8s.simulator.broker import BrokerProcess
from k8s.simulator.broker.tests.mqtt_helpers import AUTHN, Client, add_user, call, connects
from k8s.simulator.fleet import BrokerFleet
from k8s.simulator.podview import PodView, PodViewError
from k8s.simulator.resources import PODS
from k8s.tests.sim_helpers import wait_until

KEYS = "mqcloud:s3cret-key:administrator\n"
BOOTSTRAP = f'api_key.bootstrap_file = "{SECRET_FILES_DIR}/api_keys"'


def broker_spec(namespace: str, *, replicas: int = 1, extra_config: tuple[str, ...] = (BOOTSTRAP,),
                secret_env: tuple[tuple[str, str], ...] = ()) -> BrokerClusterSpec:
    return BrokerClusterSpec(
        namespace=namespace, name="emqx", organization_id="org_1", project_id="prj_1", deployment_id="dep_1",
        tier="basic", replicas=replicas, cpu_millicores=500, memory_mib=512, max_connections=1000,
        image="emqx/emqx:5.8.6", node_cookie="cookie", dashboard_password="dashboard", blocked_cidrs=("10.0.0.0/8",),
        extra_config=extra_config, secret_env=secret_env, secret_files={"api_keys": KEYS})


def apply(cluster: SimulatedCluster, spec: BrokerClusterSpec) -> None:
    with cluster.api_client() as api_client:
        dynamic = DynamicClient(api_client)
        for obj in render(spec):
            resource = dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
            resource.server_side_apply(body=obj, name=obj["metadata"]["name"],
                                       namespace=obj["metadata"].get("namespace"), field_manager="mqcloud",
                                       force_conflicts=True)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SimulatedCluster]:
    with SimulatedCluster(ready_delay_s=0.05, namespace_delete_delay_s=0.1, seed=11, brokers_dir=tmp_path / "brokers",
                          broker_sample_s=0.2) as sim:
        yield sim


def running_broker(cluster: SimulatedCluster, namespace: str, timeout: float = 20) -> BrokerProcess:
    assert cluster.fleet is not None
    return wait_until(lambda: cluster.fleet.broker(namespace), timeout=timeout)


def load_balancer_ip(cluster: SimulatedCluster, namespace: str) -> str:
    with cluster.api_client() as api_client:
        def ip() -> str | None:
            svc = client.CoreV1Api(api_client).read_namespaced_service("emqx-public", namespace)
            ingress = (svc.status.load_balancer and svc.status.load_balancer.ingress) or []
            return ingress[0].ip if ingress else None
        return wait_until(ip)


def scale(cluster: SimulatedCluster, namespace: str, replicas: int) -> None:
    with cluster.api_client() as api_client:
        client.AppsV1Api(api_client).patch_namespaced_stateful_set_scale(
            "emqx", namespace, {"spec": {"replicas": replicas}})


def test_a_ready_pod_gets_a_real_broker_at_its_load_balancer_address_kept_across_stop_and_start(cluster):
    apply(cluster, broker_spec("mq-a"))
    broker = running_broker(cluster, "mq-a")
    assert load_balancer_ip(cluster, "mq-a") == broker.host and broker.host.startswith("127.77.")
    assert broker.ports["mqtt"] == 1883 and broker.ports["api"] == 18083
    # The management API takes the key of the Secret's bootstrap file, and nothing else.
    assert call(broker, "GET", f"{AUTHN}/users")[0] == 200
    assert call(broker, "GET", f"{AUTHN}/users", auth=("mqcloud", "wrong"))[0] == 401
    assert not connects(broker, "anonymous")
    add_user(broker, "sensor", "sensor-pass")
    assert connects(broker, "c1", "sensor", "sensor-pass")

    scale(cluster, "mq-a", 0)  # what a stop does: no Ready pod, no broker
    wait_until(lambda: cluster.fleet.broker("mq-a") is None)
    assert not broker.alive()
    scale(cluster, "mq-a", 1)
    again = running_broker(cluster, "mq-a")
    assert again.host == broker.host  # the endpoint did not move
    assert connects(again, "c1", "sensor", "sensor-pass")  # the users survived, as on EMQX's data volume


def test_metrics_are_the_brokers_own_counters(cluster):
    apply(cluster, broker_spec("mq-m"))
    broker = running_broker(cluster, "mq-m")
    assert cluster.metrics.current("mq-m")["connections"] == 0
    add_user(broker, "sensor", "sensor-pass")
    clients = [Client(broker, f"c{i}", "sensor", "sensor-pass") for i in range(3)]
    try:
        wait_until(lambda: cluster.metrics.current("mq-m")["connections"] == 3)
        connects(broker, "bad", "sensor", "wrong-pass")
        wait_until(lambda: cluster.metrics.current("mq-m")["authentication_failures"] >= 1)
    finally:
        for c in clients:
            c.close()
    wait_until(lambda: cluster.metrics.current("mq-m")["connections"] == 0)
    # Pinned values still win (the alert tests steer them).
    assert cluster.metrics.steer("mq-m", {"connections": 900})["connections"] == 900


def test_deleting_the_namespace_stops_the_broker_and_forgets_its_state(cluster, tmp_path):
    apply(cluster, broker_spec("mq-d"))
    broker = running_broker(cluster, "mq-d")
    assert (tmp_path / "brokers" / "mq-d").is_dir()
    with cluster.api_client() as api_client:
        client.CoreV1Api(api_client).delete_namespace("mq-d")
    wait_until(lambda: not broker.alive() and not (tmp_path / "brokers" / "mq-d").exists())


class Receiver(BaseHTTPRequestHandler):
    """An HTTP authentication service: allows `http-*` users with the right shared header."""

    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        Receiver.seen.append({"body": body, "token": self.headers.get("x-token")})
        allowed = body["username"].startswith("http-") and self.headers.get("x-token") == "t0ken"
        payload = json.dumps({"result": "allow" if allowed else "deny"}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


def test_the_http_authenticator_of_the_rendered_config_follows_the_built_in_database(cluster):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/auth"
    authn = "\n".join([
        "authentication = [",
        "  { mechanism = password_based, backend = built_in_database, user_id_type = username }",
        "  { mechanism = password_based, backend = http, enable = true, method = post,",
        f"    url = {json.dumps(url)}, headers {{ \"x-token\" = ${{?MQCLOUD_TOKEN}} }},",
        '    body { "username" = "${username}", "password" = "${password}", "clientid" = "${clientid}" },',
        '    request_timeout = "2s" }',
        "]",
    ])
    try:
        apply(cluster, broker_spec("mq-h", extra_config=(BOOTSTRAP, authn), secret_env=(("MQCLOUD_TOKEN", "t0ken"),)))
        broker = running_broker(cluster, "mq-h")
        add_user(broker, "http-local", "local-pass")
        assert connects(broker, "c1", "http-device", "any")  # unknown to the database: the service allows
        assert Receiver.seen[-1] == {"body": {"username": "http-device", "password": "any", "clientid": "c1"},
                                     "token": "t0ken"}
        assert not connects(broker, "c2", "device", "any")  # the service denies
        calls = len(Receiver.seen)
        assert connects(broker, "c3", "http-local", "local-pass")  # the database allows first
        assert not connects(broker, "c4", "http-local", "wrong")  # and its deny is final
        assert len(Receiver.seen) == calls
    finally:
        server.shutdown()
        server.server_close()


def test_a_broker_serves_a_pod_only_once_it_runs_the_pods_current_configuration(tmp_path):
    """A pod must not turn Ready on a broker still running the configuration it had before (a new certificate, a
    new API key): the kubelet asks ``serving`` before the fleet's next pass has restarted the broker with it."""
    with SimulatedCluster(ready_delay_s=0.05, seed=12) as sim:
        fleet = BrokerFleet(sim.state, tmp_path / "brokers")
        try:
            spec = broker_spec("mq-plan")
            apply(sim, spec)
            wait_until(lambda: sim.state.objects(PODS, "mq-plan"))
            fleet.reconcile()
            first = fleet.broker("mq-plan")
            assert first is not None and fleet.serving("mq-plan")
            apply(sim, replace(spec, secret_files={"api_keys": "mqcloud:rotated-key:administrator\n"}))
            assert first.alive() and not fleet.serving("mq-plan")  # the old process, with the old key
            # The fleet's passes (its thread is not started here) restart the broker as the pods roll over.
            wait_until(lambda: fleet.reconcile() or fleet.serving("mq-plan"))
            assert fleet.broker("mq-plan") is not first and not first.alive()
        finally:
            fleet.stop()


def test_a_pod_whose_config_cannot_be_read_gets_no_broker(cluster):
    apply(cluster, broker_spec("mq-x", extra_config=()))  # no api_key.bootstrap_file: nobody could manage it
    wait_until(lambda: "sets no api_key.bootstrap_file" in (cluster.fleet.problem("mq-x") or ""))
    assert cluster.fleet.broker("mq-x") is None


def test_the_pod_view_resolves_mounts_environment_and_optional_sources():
    spec = broker_spec("mq-v", secret_env=(("MQCLOUD_X", "x-value"),))
    objects = {o["kind"]: o for o in render(spec)}
    sts = objects["StatefulSet"]["spec"]["template"]["spec"]
    secret = {"data": {k: base64.b64encode(v.encode()).decode()
                       for k, v in objects["Secret"]["stringData"].items()}}
    view = PodView(sts, {"emqx-config": objects["ConfigMap"]}, {"emqx-bootstrap": secret})
    assert view.environment()["MQCLOUD_X"] == "x-value"
    assert view.files()[f"{SECRET_FILES_DIR}/api_keys"] == KEYS
    assert view.broker_plan().api_keys == KEYS
    with pytest.raises(PodViewError, match="emqx-bootstrap"):
        PodView(sts, {"emqx-config": objects["ConfigMap"]}, {}).broker_plan()
    optional = {**sts, "volumes": [*sts["volumes"], {"name": "tls", "secret": {"secretName": "emqx-tls",
                                                                              "optional": True}}]}
    optional["containers"] = [{**sts["containers"][0], "volumeMounts": [
        *sts["containers"][0]["volumeMounts"], {"name": "tls", "mountPath": "/opt/emqx/etc/certs"}]}]
    plan = PodView(optional, {"emqx-config": objects["ConfigMap"]}, {"emqx-bootstrap": secret}).broker_plan()
    assert plan.certfile is None  # the certificate is not there yet: no TLS listener


def test_the_pod_view_serves_the_rendered_tls_secret():
    from dataclasses import replace

    from k8s.render import BrokerTls

    spec = replace(broker_spec("mq-t"),
                   tls=BrokerTls(certificate_chain="CERT\n", private_key="KEY\n", ca_certificates="CA\n"))
    objects = render(spec)
    sts = next(o for o in objects if o["kind"] == "StatefulSet")["spec"]["template"]["spec"]
    secrets = {o["metadata"]["name"]: {"data": {k: base64.b64encode(v.encode()).decode()
                                                for k, v in o["stringData"].items()}}
               for o in objects if o["kind"] == "Secret"}
    config_map = next(o for o in objects if o["kind"] == "ConfigMap")
    plan = PodView(sts, {"emqx-config": config_map}, secrets).broker_plan()
    assert (plan.certfile, plan.keyfile) == ("CERT\n", "KEY\n")
