"""The Connect card's commands: quoted to run as printed, and run as printed against a real broker."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

from deployments.console.connect import connect_snippets, split_address
from deployments.models import MANAGEMENT_API_KEY
from deployments.mqtt_access import delivery
from deployments.tests.factories import DeploymentFactory
from tests.support import console_login as logged_in
from tests.support import console_url as url

ENDPOINTS = {"mqtt": "mq.example.net:1883", "mqtts": "mq.example.net:8883", "ws": "mq.example.net:8083"}


def test_addresses_split_into_host_and_port():
    assert split_address("mq.example.net:1883") == ("mq.example.net", 1883)
    assert split_address("[::1]:8883") == ("::1", 8883)
    assert split_address("no-port") is None and split_address("") is None


def test_mqtts_snippets_only_once_the_ca_can_be_downloaded():
    plain = connect_snippets(ENDPOINTS, tls_ready=False)
    assert [s.kind for s in plain] == ["mqtt", "mqtt"]
    assert all("ca.pem" not in s.text for s in plain)
    tls = {s.id: s.text for s in connect_snippets(ENDPOINTS, tls_ready=True)}
    assert "mosquitto_pub -h mq.example.net -p 8883 -u" in tls["snippet-mqtts-mosquitto"]
    assert "--cafile ca.pem" in tls["snippet-mqtts-mosquitto"]
    assert 'client.tls_set(ca_certs="ca.pem")' in tls["snippet-mqtts-python"]
    assert "client.connect('mq.example.net', 8883)" in tls["snippet-mqtts-python"]


def test_credentials_are_quoted_for_the_shell_and_for_python():
    snippets = {s.id: s.text for s in connect_snippets(ENDPOINTS, tls_ready=False, username="it's me",
                                                       password="$(rm -rf ~)")}
    assert "-u 'it'\"'\"'s me' -P '$(rm -rf ~)'" in snippets["snippet-mqtt-mosquitto"]
    assert 'client.username_pw_set("it\'s me", \'$(rm -rf ~)\')' in snippets["snippet-mqtt-python"]
    anonymous = {s.id: s.text for s in connect_snippets(ENDPOINTS, tls_ready=False)}
    assert '-u "$MQTT_USERNAME" -P "$MQTT_PASSWORD"' in anonymous["snippet-mqtt-mosquitto"]
    assert 'os.environ["MQTT_PASSWORD"]' in anonymous["snippet-mqtt-python"]


@pytest.mark.django_db
def test_the_commands_shown_with_a_new_password_work_as_printed(tmp_path: Path, settings):
    """Create a user in the console, allow test/# in the ACL, then run the snippets exactly as the page prints
    them (mosquitto_sub/mosquitto_pub and the Python one) against a real broker holding that user."""
    from k8s.simulator.broker import start_broker_on_free_address

    for tool in ("/usr/bin/mosquitto_pub", "/usr/bin/mosquitto_sub"):
        if not Path(tool).exists():
            pytest.skip("needs the mosquitto clients")
    client, member = logged_in()
    deployment = DeploymentFactory(organization=member.organization)
    keys = tmp_path / "api_keys"
    keys.write_text(f"{MANAGEMENT_API_KEY}:{deployment.management_api_secret}:administrator\n")
    with start_broker_on_free_address(bootstrap_file=keys, mqtt_port=0, ws_port=0, api_port=0) as broker:
        settings.BROKER_MANAGEMENT_URL_TEMPLATE = f"http://{{endpoint_host}}:{broker.api_port}"
        deployment.endpoints = {"mqtt": f"{broker.host}:{broker.mqtt_port}"}
        deployment.save(update_fields=["endpoints"])
        client.post(url("deployment-acl", deployment.id), {
            "rules-TOTAL_FORMS": "1", "rules-INITIAL_FORMS": "0", "no_match": "deny", "op": "save",
            "rules-0-permission": "allow", "rules-0-who": "all", "rules-0-action": "all", "rules-0-topics": "test/#"})
        body = client.post(url("deployment-mqtt-users", deployment.id), {"username": "first device"}).content.decode()
        delivery.mqtt_access_push(deployment_id=deployment.id)
        snippet = _snippets(body)
        password = re.search(r'<code id="mqtt-password">([^<]+)</code>', body).group(1)
        card = _snippets(client.get(url("deployment-detail", deployment.id)).content.decode())
        environment = {"PATH": "/usr/bin:/bin", "MQTT_USERNAME": "first device", "MQTT_PASSWORD": password}
        sub_line, pub_line = _lines(snippet["snippet-mqtt-mosquitto"])
        subscriber = subprocess.Popen(["bash", "-c", sub_line.replace(" -v", " -v -C 4 -W 20")],
                                      stdout=subprocess.PIPE, text=True)
        try:
            if not _wait_subscribed(deployment):
                pytest.fail("mosquitto_sub did not connect")
            subprocess.run(["bash", "-c", pub_line], check=True, timeout=20)
            subprocess.run([sys.executable, "-c", snippet["snippet-mqtt-python"]], check=True, timeout=20)
            # The deployment page's card: the same commands, the credentials from the environment.
            subprocess.run(["bash", "-c", _lines(card["snippet-mqtt-mosquitto"])[1]], check=True, timeout=20,
                           env=environment)
            subprocess.run([sys.executable, "-c", card["snippet-mqtt-python"]], check=True, timeout=20,
                           env=environment)
            output, _ = subscriber.communicate(timeout=20)
        finally:
            subscriber.kill()
    assert output.splitlines() == ["test/hello hello"] * 4


def _snippets(body: str) -> dict[str, str]:
    return {name: html.unescape(text) for name, text in
            re.findall(r'<pre id="(snippet-mqtt-[a-z]+)">(.*?)</pre>', body, re.S)}


def _lines(commands: str) -> list[str]:
    return [line for line in commands.splitlines() if not line.startswith("#")]


def _wait_subscribed(deployment) -> bool:
    """mosquitto_sub prints nothing once subscribed: wait until the broker lists it, then a moment more."""
    import time

    from deployments.mqtt_access.broker_api import BrokerApi
    from k8s.simulator.broker.tests.mqtt_helpers import wait_for

    connected = wait_for(lambda: BrokerApi.for_deployment(deployment).clients(), timeout=10)
    time.sleep(0.3)
    return bool(connected)
