"""The commands the Connect card prints: mosquitto_sub/mosquitto_pub and paho-mqtt (Python) for ``mqtt`` and, once
the CA can be downloaded, ``mqtts``; host and port from the deployment's endpoints (``host:port``).

Printed to run as they are: values are quoted for the shell (``shlex.quote``) and for Python (``repr``). Without
a known password (the deployment page never has one) the commands read ``MQTT_USERNAME``/``MQTT_PASSWORD``
from the environment, so a password is never pasted into a page or a shell history by the console itself.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from django.urls import reverse

from deployments.models import Deployment
from deployments.tls.selectors import server_certificate_of

TOPIC = "test/hello"
SUBSCRIBE_FILTER = "test/#"
PAYLOAD = "hello"
CA_FILE = "ca.pem"
KINDS = ("mqtt", "mqtts")


@dataclass(frozen=True)
class Snippet:
    id: str
    kind: str  # "mqtt" or "mqtts"
    tool: str  # "mosquitto" or "python"
    text: str


def ca_download_url(deployment: Deployment) -> str | None:
    """The console's ca.pem download once the deployment serves a certificate (the mqtts commands need it)."""
    if server_certificate_of(deployment) is None:
        return None
    return reverse("console:deployment-ca-pem", args=[deployment.id])


def split_address(address: str) -> tuple[str, int] | None:
    """``host:port`` (``[v6]:port`` too) → (host, port); ``None`` when it is not one."""
    host, _, port = (address or "").rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        return None
    return host, int(port)


def _mosquitto(host: str, port: int, *, tls: bool, username: str | None, password: str | None) -> str:
    user = shlex.quote(username) if username is not None else '"$MQTT_USERNAME"'
    secret = shlex.quote(password) if password is not None else '"$MQTT_PASSWORD"'
    common = f"-h {shlex.quote(host)} -p {port} -u {user} -P {secret}" + (f" --cafile {CA_FILE}" if tls else "")
    return (f"# In one terminal, print what arrives:\n"
            f"mosquitto_sub {common} -t {shlex.quote(SUBSCRIBE_FILTER)} -v\n"
            f"# In another, publish:\n"
            f"mosquitto_pub {common} -t {TOPIC} -m {PAYLOAD} -q 1")


def _python(host: str, port: int, *, tls: bool, username: str | None, password: str | None) -> str:
    lines = []
    if username is None or password is None:
        lines.append("import os\n")
    lines += ["import paho.mqtt.client as mqtt", "",
              "client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)",
              "client.username_pw_set({}, {})".format(
                  repr(username) if username is not None else 'os.environ["MQTT_USERNAME"]',
                  repr(password) if password is not None else 'os.environ["MQTT_PASSWORD"]')]
    if tls:
        lines.append(f'client.tls_set(ca_certs="{CA_FILE}")')
    lines += [f"client.connect({host!r}, {port})", "client.loop_start()",
              f'client.publish("{TOPIC}", "{PAYLOAD}", qos=1).wait_for_publish()', "client.loop_stop()",
              "client.disconnect()"]
    return "\n".join(lines)


def connect_snippets(endpoints: dict[str, str] | None, *, tls_ready: bool, username: str | None = None,
                     password: str | None = None) -> list[Snippet]:
    """The snippets for each endpoint there is (``mqtts`` only when ``tls_ready``: its CA can be downloaded)."""
    snippets = []
    for kind in KINDS:
        address = split_address((endpoints or {}).get(kind, ""))
        if address is None or (kind == "mqtts" and not tls_ready):
            continue
        host, port = address
        tls = kind == "mqtts"
        snippets.append(Snippet(f"snippet-{kind}-mosquitto", kind, "mosquitto",
                                _mosquitto(host, port, tls=tls, username=username, password=password)))
        snippets.append(Snippet(f"snippet-{kind}-python", kind, "python",
                                _python(host, port, tls=tls, username=username, password=password)))
    return snippets
