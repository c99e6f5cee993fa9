#!/usr/bin/env python
"""Connect + authentication latency through the broker's chain, as ratios against a broker with anonymous access
measured in the same run.

Three simulated EMQX nodes (``k8s/simulator/broker``, one process each, on free loopback addresses):
  a. ``--allow-anonymous``: the client sends no credentials and no authenticator runs (the baseline);
  b. the built-in database with 1,000 users pushed as the control plane pushes them (``import_users?type=hash``
     with PBKDF2-SHA256 hashes from ``deployments.mqtt_access.hashing``); the client gives the right password;
  c. the same plus 100 ACL rules, rendered by ``deployments.mqtt_access.acl_conf`` (99 that name other users,
     then the one that applies, so a subscribe walks all of them).

One round is one connection to each broker, in a rotating order so drift (other processes, CPU frequency) hits
all three alike. A connection is timed from the TCP connect to the CONNACK (paho-mqtt, driven synchronously
with ``loop()``: no network thread in the measurement); then it subscribes to ``dev/<user>/cmd`` (timed to the
SUBACK: EMQX consults the ACL on subscribe and publish, never on connect) and disconnects.
Printed: p50/p95 in ms per broker, the ratios b/a, c/a of the medians, and one PBKDF2 hash timed here (the
password check b and c do and a does not).

Usage: ``bench/mqtt_connect.py [--connects N] [--users N] [--warmup N]`` (also ``BENCH_MQTT_CONNECTS``);
``tests/test_bench_mqtt.py`` runs it with a handful of connects so it cannot rot.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import ROOT  # noqa: F401 (puts the repository on sys.path, sets up Django's settings)

USERS = 1000
RULES = 100
KEY, SECRET = "bench", "bench-secret"
AUTHN = "/authentication/password_based:built_in_database"
WARMUP = 20


@dataclass
class Target:
    label: str
    broker: object
    credentials: bool
    connect_ms: list[float] = field(default_factory=list)
    subscribe_ms: list[float] = field(default_factory=list)


def acl_conf() -> str:
    from deployments.mqtt_access.acl_conf import render_acl_conf
    from deployments.mqtt_access.validation import AclRule

    others = [AclRule("allow", {"username": f"other-{i}"}, "subscribe", (f"dev/other-{i}/#",))
              for i in range(RULES - 1)]
    return render_acl_conf([*others, AclRule("allow", "all", "subscribe", ("dev/${username}/#",))])


def push_users(broker, count: int) -> dict[str, str]:
    """``count`` users with PBKDF2 hashes made as the control plane makes them; their passwords by name."""
    from deployments.mqtt_access import hashing

    passwords = {f"dev-{i:05d}": f"password-{i:05d}" for i in range(count)}
    rows = []
    for user_id, password in passwords.items():
        stored = hashing.hash_password(password)
        rows.append({"user_id": user_id, "password_hash": stored.password_hash, "salt": stored.salt,
                     "is_superuser": False})
    status, body = broker.request("POST", f"{AUTHN}/import_users?type=hash", rows, auth=(KEY, SECRET))
    assert status == 200 and body["failed"] == 0, body
    return passwords


def configure(broker, rules: str, no_match: str) -> None:
    status, _ = broker.request("PUT", "/authorization/sources/file", {"type": "file", "enable": True,
                                                                      "rules": rules}, auth=(KEY, SECRET))
    assert status == 204, status
    status, _ = broker.request("PUT", "/authorization/settings", {"no_match": no_match}, auth=(KEY, SECRET))
    assert status == 200, status


def one_connection(target: Target, client_id: str, username: str | None, password: str | None,
                   record: bool) -> None:
    import paho.mqtt.client as mqtt

    events: dict[str, object] = {}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    client.on_connect = lambda _c, _u, _f, reason, _p: events.setdefault("connack", reason)
    client.on_subscribe = lambda _c, _u, _m, reasons, _p: events.setdefault("suback", reasons)
    if username is not None:
        client.username_pw_set(username, password)
    broker = target.broker
    started = time.perf_counter()
    client.connect(broker.host, broker.mqtt_port, keepalive=30)  # type: ignore[attr-defined]
    _loop_until(client, events, "connack")
    connected = time.perf_counter()
    reason = events["connack"]
    if reason.is_failure:  # type: ignore[attr-defined]
        raise RuntimeError(f"{target.label}: CONNACK {reason} for {username!r}")
    client.subscribe(f"dev/{username or 'anonymous'}/cmd", qos=1)
    _loop_until(client, events, "suback")
    subscribed = time.perf_counter()
    granted = events["suback"][0]  # type: ignore[index]
    if granted.is_failure:
        raise RuntimeError(f"{target.label}: SUBACK {granted} for {username!r}")
    client.disconnect()
    if record:
        target.connect_ms.append((connected - started) * 1000)
        target.subscribe_ms.append((subscribed - connected) * 1000)


def _loop_until(client, events: dict[str, object], name: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while name not in events:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {name}")
        client.loop(timeout=0.05)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connects", type=int, default=int(os.environ.get("BENCH_MQTT_CONNECTS", "500")),
                        help="timed connections per broker")
    parser.add_argument("--users", type=int, default=USERS, help="users in the built-in database")
    parser.add_argument("--warmup", type=int, default=WARMUP, help="untimed rounds first")
    args = parser.parse_args(argv)

    from k8s.simulator.broker import start_broker_on_free_address

    with tempfile.TemporaryDirectory(prefix="bench-mqtt-") as tmp:
        keys = Path(tmp) / "api_keys"
        keys.write_text(f"{KEY}:{SECRET}:administrator\n")
        brokers = []
        try:
            for allow_anonymous in (True, False, False):
                brokers.append(start_broker_on_free_address(bootstrap_file=keys, allow_anonymous=allow_anonymous))
            anonymous, chain, chain_acl = brokers
            started = time.perf_counter()
            passwords = push_users(chain, args.users)
            passwords_acl = push_users(chain_acl, args.users)
            configure(anonymous, "", "allow")
            configure(chain, "", "allow")
            configure(chain_acl, acl_conf(), "deny")
            print(f"bench mqtt connect: {args.connects} connections per broker, {args.users} users pushed "
                  f"({time.perf_counter() - started:.1f} s), {RULES} ACL rules on c")
            targets = [
                Target("a. anonymous access (baseline)", anonymous, credentials=False),
                Target("b. built-in database, right password", chain, credentials=True),
                Target(f"c. b + {RULES} ACL rules", chain_acl, credentials=True),
            ]
            user_ids = sorted(passwords)
            for round_ in range(args.warmup + args.connects):
                user_id = user_ids[round_ % len(user_ids)]
                for offset in range(len(targets)):
                    target = targets[(round_ + offset) % len(targets)]
                    secrets = passwords_acl if target.broker is chain_acl else passwords
                    one_connection(target, f"bench-{round_}-{offset}",
                                   user_id if target.credentials else None,
                                   secrets[user_id] if target.credentials else None, record=round_ >= args.warmup)
        finally:
            for broker in brokers:
                broker.stop()

    print(f"  {'':<40} {'connect p50':>12} {'p95':>8} {'subscribe p50':>14} {'p95':>8}  (ms)")
    for target in targets:
        print(f"  {target.label:<40} {statistics.median(target.connect_ms):12.2f} "
              f"{percentile(target.connect_ms, 95):8.2f} {statistics.median(target.subscribe_ms):14.2f} "
              f"{percentile(target.subscribe_ms, 95):8.2f}")
    base_connect = statistics.median(targets[0].connect_ms)
    base_subscribe = statistics.median(targets[0].subscribe_ms)
    from deployments.mqtt_access import hashing

    pbkdf2 = []
    for _ in range(50):
        started = time.perf_counter()
        hashing.pbkdf2_hex("password-00000", "0123456789abcdef0123456789abcdef")
        pbkdf2.append((time.perf_counter() - started) * 1000)
    print(f"  one PBKDF2-SHA256 ({hashing.PBKDF2_ITERATIONS} rounds) in this process: "
          f"{statistics.median(pbkdf2):.2f} ms (what b pays over a per connect, at least)")
    print("ratios of the medians against the anonymous broker (lower is better):")
    for name, target in (("b/a", targets[1]), ("c/a", targets[2])):
        print(f"  {name} connect {statistics.median(target.connect_ms) / base_connect:5.2f}x   "
              f"subscribe {statistics.median(target.subscribe_ms) / base_subscribe:5.2f}x   ({target.label})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
