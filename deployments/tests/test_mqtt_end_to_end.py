"""A deployment a device can really connect to: the API, a Celery worker on Redis, the simulated cluster with
real brokers, and paho-mqtt clients at the endpoint the API returns.

No credentials, a wrong password: refused. The right password: accepted. The ACL lets a device use
``dev/${username}/#`` and nothing else. A kicked client is disconnected. The ``connections`` metric and an
alert rule on it react to real connections. ``mqtts`` and ``wss`` serve the deployment's certificate, which
verifies against the API's ``ca.pem`` (and not against another CA). Stopping the deployment stops its broker."""

from __future__ import annotations

import hashlib
import ssl
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.utils import timezone

from alerts.evaluator import alerts_evaluate
from alerts.metrics import metrics_collect
from deployments.models import Deployment
from k8s.simulator.broker.tests.mqtt_helpers import Client, connects, make_tls
from tests.support import running_worker, simulated_cluster, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def cluster(tmp_path: Path):
    with simulated_cluster(seed=13, brokers_dir=tmp_path / "brokers", broker_sample_s=0.2) as simulated:
        yield simulated


@pytest.fixture
def api(project_api):
    return project_api


def endpoint(deployment: dict) -> SimpleNamespace:
    """What a device is given: the `mqtt` endpoint's host and the endpoints' ports (the test clients take a
    broker-like)."""
    host, _, port = deployment["endpoints"]["mqtt"].rpartition(":")
    ports = {name: int(value.rpartition(":")[2]) for name, value in deployment["endpoints"].items()}
    return SimpleNamespace(host=host, mqtt_port=int(port), ports=ports)


def test_devices_connect_with_credentials_and_acl_kicks_and_metrics(api, cluster, tmp_path):
    with running_worker():
        created = api.post("/api/v1/deployments", {"project": api.project.id, "name": "devices",
                                                   "region": "aws-us-east-1", "spec": "basic-1k"}, format="json")
        assert created.status_code == 202, created.content
        base = f"/api/v1/deployments/{created.json()['id']}"

        def status(wanted: str) -> dict | None:
            body = api.get(base).json()
            assert body["status"] != "failed", body
            return body if body["status"] == wanted else None

        deployment = wait_for(lambda: status("running"), "the deployment to run")
        broker = endpoint(deployment)
        assert broker.host.startswith("127.77.") and broker.mqtt_port == 1883

        user = api.post(f"{base}/mqtt-users", {"username": "sensor-1"}, format="json").json()
        assert api.put(f"{base}/acl", {"rules": [
            {"permission": "allow", "who": "all", "action": "all", "topics": ["dev/${username}/#"]},
        ]}, format="json").status_code == 200
        wait_for(lambda: (lambda acl: acl["applied_generation"] == acl["generation"])(api.get(f"{base}/acl").json()),
                 "the users and rules to reach the broker")

        assert not connects(broker, "nobody")
        assert not connects(broker, "guess", "sensor-1", "wrong-password")
        device = Client(broker, "device-1", "sensor-1", user["password"])
        assert device.accepted
        assert device.subscribe("dev/sensor-1/#") == 1
        assert device.subscribe("dev/other/#") == 0x80
        device.publish("dev/sensor-1/temp", b"21.5")
        wait_for(lambda: ("dev/sensor-1/temp", b"21.5") in device.messages, "the device's own message")

        clients = api.get(f"{base}/clients", {"username": "sensor-1"}).json()["results"]
        assert [(c["clientid"], c["username"], c["protocol"]) for c in clients] == [
            ("device-1", "sensor-1", "MQTT 4")]

        # The connections metric and a rule on it see the real client.
        rule = api.post("/api/v1/alert-rules", {
            "name": "anyone there", "project": api.project.id, "deployment": deployment["id"],
            "metric": "connections", "operator": ">=", "threshold": "1", "duration_s": 0,
            "severity": "info", "channels": [], "repeat_interval_s": 3600}, format="json")
        assert rule.status_code == 201, rule.json()
        wait_for(lambda: cluster.metrics.current(_namespace(base))["connections"] == 1, "the broker's count")
        now = timezone.now()
        metrics_collect(now=now)
        assert alerts_evaluate(now=now)["fired"] == 1
        (alert,) = api.get("/api/v1/alerts", {"state": "firing"}).json()["results"]
        assert alert["value"] == 1.0

        assert api.delete(f"{base}/clients/device-1").status_code == 204
        assert device.disconnected.wait(5)
        device.close()
        wait_for(lambda: cluster.metrics.current(_namespace(base))["connections"] == 0, "the kick counted")
        resolved = 0
        for seconds in (30, 60, 90, 120):  # a clear condition must hold a while (flapping is damped)
            metrics_collect(now=now + timedelta(seconds=seconds))
            resolved += alerts_evaluate(now=now + timedelta(seconds=seconds))["resolved"]
        assert resolved == 1

        _devices_connect_over_tls(api, base, broker, user["password"], tmp_path)

        assert api.post(f"{base}/stop").status_code == 202
        wait_for(lambda: status("stopped"), "the deployment to stop")
        wait_for(lambda: cluster.fleet.broker(_namespace(base)) is None, "the broker to stop")
        with pytest.raises(OSError):
            connects(broker, "late", "sensor-1", user["password"])


def _devices_connect_over_tls(api, base: str, broker: SimpleNamespace, password: str, tmp_path: Path) -> None:
    deployment = api.get(base).json()
    tls = deployment["tls"]
    assert tls["ca_pem_url"] == f"{base}/ca.pem"
    response = api.get(tls["ca_pem_url"], HTTP_ACCEPT="application/x-pem-file")
    assert response.status_code == 200 and response["Content-Type"] == "application/x-pem-file"
    ca_pem = tmp_path / "ca.pem"
    ca_pem.write_bytes(response.content)
    ports = {}
    for name in ("mqtts", "wss"):
        host, _, port = deployment["endpoints"][name].rpartition(":")
        assert host == broker.host  # an IP address: the certificate must carry it as an IP SAN
        ports[name] = int(port)

    secure = Client(broker, "device-tls", "sensor-1", password, port=ports["mqtts"], ca=ca_pem)
    assert secure.accepted
    served = secure.c.socket().getpeercert(binary_form=True)
    assert hashlib.sha256(served).hexdigest() == tls["fingerprint_sha256"]
    secure.close()
    assert not connects(broker, "tls-guess", "sensor-1", "wrong-password", port=ports["mqtts"], ca=ca_pem)
    assert connects(broker, "device-wss", "sensor-1", password, transport="websockets", port=ports["wss"],
                    ca=ca_pem)

    other_ca = make_tls(tmp_path, broker.host)[0]  # a CA that did not sign the deployment's certificate
    with pytest.raises(ssl.SSLCertVerificationError):
        Client(broker, "device-other-ca", "sensor-1", password, port=ports["mqtts"], ca=other_ca)


def _namespace(base: str) -> str:
    return Deployment.objects.get(pk=base.rsplit("/", 1)[1]).namespace
