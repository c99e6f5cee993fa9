"""Helpers for the broker tests: a paho-mqtt client that records what happens, management API calls, and a
throwaway CA with a server certificate for a loopback address."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import secrets
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from k8s.simulator.broker import BrokerProcess

KEY, SECRET = "mqcloud", "s3cret-key"
AUTHN = "/authentication/password_based:built_in_database"


def uid(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def make_tls(directory: Path, host: str) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for `host` (IP SAN) signed by it: (ca.pem, cert.pem, key.pem)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mqcloud test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def call(broker: BrokerProcess, method: str, path: str, body=None, auth=(KEY, SECRET)):
    """(status, parsed JSON or text) of one management API call (``auth=None``: no credentials)."""
    return broker.request(method, path, body, auth=auth)


def add_user(broker: BrokerProcess, user_id: str, password: str, superuser: bool = False) -> None:
    salt = secrets.token_hex(8)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 4096, 32).hex()
    entry = {"user_id": user_id, "password_hash": digest, "salt": salt, "is_superuser": superuser}
    status, body = call(broker, "POST", f"{AUTHN}/import_users?type=hash", [entry])
    assert status == 200 and body["failed"] == 0, body


def set_rules(broker: BrokerProcess, rules: str) -> None:
    body = {"type": "file", "enable": True, "rules": rules}
    assert call(broker, "PUT", "/authorization/sources/file", body)[0] == 204


class Client:
    """A paho-mqtt 2.x client that records what happens to it."""

    def __init__(self, broker: BrokerProcess, client_id: str, username=None, password=None, *,
                 transport: str = "tcp", port: int | None = None, ca: Path | None = None, will=None,
                 keepalive: int = 30) -> None:
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, transport=transport)
        if will is not None:
            self.c.will_set(*will)
        self.c.reconnect_delay_set(min_delay=60, max_delay=120)  # a kicked client must stay disconnected
        if username is not None:
            self.c.username_pw_set(username, password)
        if ca is not None:
            self.c.tls_set(ca_certs=str(ca))
        self.connack = threading.Event()
        self.disconnected = threading.Event()
        self.subacks: dict[int, list] = {}
        self.suback = threading.Condition()
        self.messages: list[tuple[str, bytes]] = []
        self.reason = None
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = lambda *a: self.disconnected.set()
        self.c.on_subscribe = self._on_subscribe
        self.c.on_message = lambda _c, _u, msg: self.messages.append((msg.topic, msg.payload))
        default = broker.mqtt_port if transport == "tcp" else broker.ports["ws"]
        self.c.connect(broker.host, port or default, keepalive=keepalive)
        self.c.loop_start()
        assert self.connack.wait(5), "no CONNACK"

    def _on_connect(self, _c, _u, _flags, reason, _props) -> None:
        self.reason = reason
        self.connack.set()

    def _on_subscribe(self, _c, _u, mid, reasons, _props) -> None:
        with self.suback:
            self.subacks[mid] = [r.value for r in reasons]
            self.suback.notify_all()

    @property
    def accepted(self) -> bool:
        return not self.reason.is_failure

    def subscribe(self, topic: str) -> int:
        """The granted QoS, or 0x80 (128) when refused."""
        _, mid = self.c.subscribe(topic, qos=1)
        with self.suback:
            assert self.suback.wait_for(lambda: mid in self.subacks, 5), "no SUBACK"
            return self.subacks[mid][0]

    def publish(self, topic: str, payload: bytes) -> None:
        self.c.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def connects(broker: BrokerProcess, client_id: str, username=None, password=None, **kwargs) -> bool:
    """Whether the broker accepts this CONNECT; the client is gone again afterwards."""
    client = Client(broker, client_id, username, password, **kwargs)
    client.close()
    return client.accepted


def wait_for(predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)
