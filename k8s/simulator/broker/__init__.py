"""A real MQTT broker process standing in for one EMQX 5 deployment (amqtt underneath, MQTT 3.1.1).

It enforces what the control plane pushes to a real EMQX: built-in database users (pbkdf2-sha256 hashes,
anonymous refused) and the file authorization source (acl.conf rules, `no_match`), and serves the subset of
the `/api/v5` management API the control plane calls. No Django; standard library, amqtt and nothing else.

    with start_broker("127.77.0.5", bootstrap_file="keys.txt") as broker:
        ...  # mqtt on 127.77.0.5:1883, API on http://127.77.0.5:18083/api/v5

Run alone: `python -m k8s.simulator.broker --host 127.77.0.5 --api-bootstrap-file keys.txt`.
"""

from .process import BrokerProcess, BrokerStartError, start_broker, start_broker_on_free_address

__all__ = ["BrokerProcess", "BrokerStartError", "start_broker", "start_broker_on_free_address"]
