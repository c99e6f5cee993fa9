"""MQTT access delivered to a real broker: the control plane's users and ACL pushed through the management API
(EMQX 5 REST subset) of the simulated EMQX broker process, then checked with real paho-mqtt clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deployments.models import MANAGEMENT_API_KEY, Deployment, MqttAccess
from deployments.mqtt_access import delivery
from deployments.mqtt_access.broker_api import BrokerApi, BrokerUnavailable
from deployments.tests.factories import DeploymentFactory
from k8s.simulator.broker import BrokerProcess, start_broker_on_free_address
from k8s.simulator.broker.tests.mqtt_helpers import Client, connects, wait_for
from projects.roles import Role
from projects.tests.factories import OrganizationFactory, make_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def deployment() -> Deployment:
    return DeploymentFactory(organization=OrganizationFactory())


@pytest.fixture
def broker(deployment: Deployment, tmp_path: Path) -> Iterator[BrokerProcess]:
    keys = tmp_path / "api_keys"
    keys.write_text(f"{MANAGEMENT_API_KEY}:{deployment.management_api_secret}:administrator\n")
    with start_broker_on_free_address(bootstrap_file=keys, mqtt_port=0, ws_port=0, api_port=0) as process:
        yield process


@pytest.fixture
def live(deployment: Deployment, broker: BrokerProcess, settings) -> Deployment:
    """The deployment's endpoints point at the broker; its management API listens on the broker's API port."""
    settings.BROKER_MANAGEMENT_URL_TEMPLATE = f"http://{{endpoint_host}}:{broker.api_port}"
    deployment.endpoints = {"mqtt": f"{broker.host}:{broker.mqtt_port}"}
    deployment.save(update_fields=["endpoints"])
    return deployment


@pytest.fixture
def api(deployment, make_client):
    _, secret = make_api_key(deployment.organization, role=Role.OWNER)
    return make_client(secret)


def test_users_and_acl_pushed_to_the_broker_decide_real_connections(api, live, broker) -> None:
    base = f"/api/v1/deployments/{live.id}"
    created = api.post(f"{base}/mqtt-users", {"username": "sensor-1"}, format="json").json()
    api.post(f"{base}/mqtt-users", {"username": "watcher", "password": "watcher-pass", "is_superuser": True},
             format="json")
    api.put(f"{base}/acl", {"rules": [{"permission": "allow", "who": "all", "action": "publish",
                                        "topics": ["dev/${username}/#"]}]}, format="json")
    assert delivery.mqtt_access_push(deployment_id=live.id).startswith("generation 3")
    assert MqttAccess.objects.get(deployment=live).applied_generation == 3
    assert not delivery.mqtt_access_drifted(deployment_id=live.id)

    assert not connects(broker, "anon")  # anonymous: refused
    assert not connects(broker, "wrong", "sensor-1", "not-the-password")
    watcher = Client(broker, "watcher", "watcher", "watcher-pass")
    watcher.subscribe("dev/#")
    device = Client(broker, "device-1", "sensor-1", created["password"])
    assert device.accepted
    device.publish("dev/sensor-1/temp", b"21.5")
    device.publish("dev/other/temp", b"spoofed")  # denied by the ACL: dropped
    assert wait_for(lambda: [topic for topic, _ in watcher.messages] == ["dev/sensor-1/temp"])

    clients = api.get(f"{base}/clients", {"username": "sensor"}).json()["results"]
    assert [(c["clientid"], c["username"]) for c in clients] == [("device-1", "sensor-1")]
    assert api.delete(f"{base}/clients/device-1").status_code == 204
    assert device.disconnected.wait(5)
    assert api.delete(f"{base}/clients/device-1").status_code == 404
    device.close()
    watcher.close()


def test_a_broker_that_lost_or_gained_users_is_repaired(api, live, broker) -> None:
    base = f"/api/v1/deployments/{live.id}"
    api.post(f"{base}/mqtt-users", {"username": "kept", "password": "kept-pass1"}, format="json")
    delivery.mqtt_access_push(deployment_id=live.id)
    client = BrokerApi.for_deployment(live)
    client.user_delete("kept")
    client.users_import([{"user_id": "intruder", "password_hash": "0" * 64, "salt": "saltsalt",
                          "is_superuser": True}])
    assert delivery.mqtt_access_drifted(deployment_id=live.id)
    delivery.mqtt_access_push(deployment_id=live.id)
    assert client.user_ids() == {"kept"}
    assert not delivery.mqtt_access_drifted(deployment_id=live.id)


def test_a_broker_that_is_down_leaves_the_change_pending(api, live, broker) -> None:
    api.post(f"/api/v1/deployments/{live.id}/mqtt-users", {"username": "later", "password": "later-pass"},
             format="json")
    broker.stop()
    with pytest.raises(BrokerUnavailable):
        delivery.mqtt_access_push(deployment_id=live.id)
    access = MqttAccess.objects.get(deployment=live)
    assert (access.generation, access.applied_generation) == (1, 0)
    assert delivery.deployments_needing_push() == [live.id]
    assert api.get(f"/api/v1/deployments/{live.id}/clients").status_code == 503
