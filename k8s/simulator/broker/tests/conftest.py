"""One broker with all four listeners (TLS by a CA made here) serves the module's tests; `broker` resets what
the tests change (rules, settings) to a control plane's defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from k8s.simulator.broker import BrokerStartError, start_broker
from k8s.simulator.broker.process import random_loopback

from .mqtt_helpers import KEY, SECRET, call, make_tls, set_rules


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "api_keys"
    path.write_text(f"# EMQX api_key.bootstrap_file\n{KEY}:{SECRET}:administrator\n")
    return path


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory, keys_file):
    """A broker with all four listeners on a free loopback address, and the CA that signed its certificate."""
    for _ in range(10):
        host = random_loopback()
        ca, cert, key = make_tls(tmp_path_factory.mktemp("tls"), host)
        try:
            broker = start_broker(host, bootstrap_file=keys_file, certfile=cert, keyfile=key)
        except BrokerStartError as exc:
            if exc.address_in_use:
                continue
            raise
        broker.ca = ca  # type: ignore[attr-defined]
        yield broker
        assert broker.stop() == 0, broker.logs()
        return
    pytest.fail("no free loopback address")


@pytest.fixture
def broker(tls_broker):
    """The module's broker with the defaults a control plane pushes: no rules, no_match deny."""
    set_rules(tls_broker, "")
    assert call(tls_broker, "PUT", "/authorization/settings", {"no_match": "deny"})[0] == 200
    return tls_broker
