"""The broker process against real paho-mqtt clients and its management API over HTTP, as the control plane
and devices will use it. One broker (with TLS) serves the module; tests that stop a broker start their own."""

from __future__ import annotations

import datetime as dt
import hashlib
import signal
import time
import urllib.parse

import pytest

from k8s.simulator.broker import BrokerStartError, start_broker, start_broker_on_free_address

from .mqtt_helpers import AUTHN, KEY, SECRET, Client, add_user, call, connects, make_tls, set_rules, uid, wait_for

# --- authentication ------------------------------------------------------------------------------------------


def test_anonymous_unknown_and_wrong_password_are_refused_the_right_one_accepted(broker):
    anonymous = Client(broker, uid("anon"))
    assert not anonymous.accepted and anonymous.reason.value == 135  # CONNACK 5: not authorized
    user = uid("dev")
    unknown = Client(broker, uid("c"), user, "pw")
    assert not unknown.accepted and unknown.reason.value == 135
    add_user(broker, user, "right password")
    wrong = Client(broker, uid("c"), user, "wrong password")
    assert not wrong.accepted and wrong.reason.value == 134  # CONNACK 4: bad user name or password
    right = Client(broker, uid("c"), user, "right password")
    assert right.accepted
    right.close()
    for c in (anonymous, unknown, wrong):
        c.c.loop_stop()


def test_allow_anonymous_accepts_a_client_without_credentials_and_still_checks_users(keys_file):
    with start_broker_on_free_address(bootstrap_file=keys_file, allow_anonymous=True) as open_broker:
        assert connects(open_broker, uid("anon"))
        add_user(open_broker, "dev", "right password")
        assert connects(open_broker, uid("c"), "dev", "right password")
        wrong = Client(open_broker, uid("c"), "dev", "wrong password")
        assert not wrong.accepted and wrong.reason.value == 134
        wrong.c.loop_stop()
        status, metrics = call(open_broker, "GET", "/metrics")
        assert status == 200 and metrics[0]["client.authenticate"] == 3 and metrics[0]["client.auth.failure"] == 1


def test_built_in_database_api(broker):
    user = uid("imp")
    salt = "salt"
    digest = hashlib.pbkdf2_hmac("sha256", b"pw", salt.encode(), 4096, 32).hex()
    entry = {"user_id": user, "password_hash": digest, "salt": salt, "is_superuser": False}
    status, result = call(broker, "POST", f"{AUTHN}/import_users?type=hash", [entry, {"user_id": ""}])
    assert status == 200 and result == {"total": 2, "success": 1, "override": 0, "skipped": 0, "failed": 1}
    again = [entry, {**entry, "user_id": user + "-2"}]
    changed = [{**entry, "is_superuser": True}]
    assert call(broker, "POST", f"{AUTHN}/import_users?type=hash", again)[1]["skipped"] == 1
    assert call(broker, "POST", f"{AUTHN}/import_users?type=hash", changed)[1]["override"] == 1

    status, page = call(broker, "GET", f"{AUTHN}/users?page=1&limit=1&like_user_id={user}")
    assert status == 200 and page["data"] == [{"user_id": user, "is_superuser": True}]
    assert page["meta"] == {"page": 1, "limit": 1, "count": 2, "hasnext": True}
    quoted = urllib.parse.quote(user, safe="")
    assert call(broker, "DELETE", f"{AUTHN}/users/{quoted}") == (204, None)
    assert call(broker, "DELETE", f"{AUTHN}/users/{quoted}")[1]["code"] == "NOT_FOUND"
    assert call(broker, "DELETE", "/authentication/password_based%3Abuilt_in_database/users/x%2Fy")[0] == 404
    assert call(broker, "POST", f"{AUTHN}/import_users?type=hash", {"not": "a list"})[0] == 400


def test_create_and_update_a_user_with_a_plain_password(broker):
    user = uid("one")
    new = {"user_id": user, "password": "first", "is_superuser": False}
    assert call(broker, "POST", f"{AUTHN}/users", new) == (201, {"user_id": user, "is_superuser": False})
    assert call(broker, "POST", f"{AUTHN}/users", new)[1]["code"] == "ALREADY_EXISTS"
    assert connects(broker, uid("c"), user, "first")
    assert call(broker, "PUT", f"{AUTHN}/users/{user}", {"password": "second"})[0] == 200
    assert not connects(broker, uid("c"), user, "first")
    assert call(broker, "PUT", f"{AUTHN}/users/{user}", {"is_superuser": True})[1]["is_superuser"] is True
    client = Client(broker, uid("c"), user, "second")
    assert client.accepted and client.subscribe("anything/#") == 1  # a superuser now
    client.close()
    assert call(broker, "PUT", f"{AUTHN}/users/nobody", {"password": "x"})[1]["code"] == "NOT_FOUND"
    assert call(broker, "POST", f"{AUTHN}/users", {"user_id": user + "x", "password": ""})[0] == 400


def test_api_key_is_required(broker):
    for auth in (None, (KEY, "wrong"), ("other", SECRET)):
        status, body = call(broker, "GET", "/clients", auth=auth)
        assert status == 401 and body["code"] == "BAD_API_KEY_OR_SECRET"
    status, text = call(broker, "GET", "/status", auth=None)
    assert status == 200 and text == f"Node emqx@{broker.host} is started\nemqx is running"
    assert call(broker, "GET", "/nothing/here")[1]["code"] == "NOT_FOUND"


def test_same_client_id_takes_over_but_a_refused_connect_touches_nothing(broker):
    user = uid("take")
    add_user(broker, user, "pw")
    client_id = uid("dup")
    first = Client(broker, client_id, user, "pw")
    intruder = Client(broker, client_id, user, "not the password")
    assert not intruder.accepted
    intruder.c.loop_stop()
    time.sleep(0.2)
    assert not first.disconnected.is_set()  # a refused CONNECT does not take over the session (amqtt would)
    assert call(broker, "GET", f"/clients/{client_id}")[1]["username"] == user
    second = Client(broker, client_id, user, "pw")
    assert second.accepted
    assert first.disconnected.wait(5)  # the authenticated newcomer does, as in EMQX
    first.c.loop_stop()
    assert call(broker, "GET", f"/clients?like_clientid={client_id}")[1]["meta"]["count"] == 1
    second.close()


def test_a_silent_client_is_closed_after_one_and_a_half_keepalives(broker):
    user = uid("quiet")
    add_user(broker, user, "pw")
    client = Client(broker, uid("c"), user, "pw", keepalive=1)
    assert call(broker, "GET", f"/clients?like_username={user}")[1]["data"][0]["keepalive"] == 1
    client.c.loop_stop()  # no more PINGREQs
    started = time.monotonic()
    assert wait_for(lambda: not call(broker, "GET", f"/clients?like_username={user}")[1]["data"], 5)
    assert 0.5 <= time.monotonic() - started < 4


# --- authorization -------------------------------------------------------------------------------------------


def test_acl_allows_own_prefix_and_denies_the_rest(broker):
    dev, admin = uid("dev"), uid("admin")
    add_user(broker, dev, "pw")
    add_user(broker, admin, "pw", superuser=True)
    set_rules(broker, '{allow, all, publish, ["dev/${username}/#"]}.\n{allow, all, subscribe, ["own/${clientid}"]}.\n')
    watcher = Client(broker, uid("watch"), admin, "pw")
    assert watcher.subscribe("#") == 1  # superusers skip authorization
    device = Client(broker, "d-" + dev, dev, "pw")
    device.publish("dev/other/t", b"denied")  # dropped silently (MQTT 3.1.1 has no PUBACK reason)
    device.publish("elsewhere", b"denied")
    device.publish(f"dev/{dev}/temp", b"allowed")
    assert wait_for(lambda: watcher.messages)
    time.sleep(0.2)
    assert watcher.messages == [(f"dev/{dev}/temp", b"allowed")]
    assert device.subscribe(f"dev/{dev}/#") == 128  # no subscribe rule covers it: SUBACK 0x80
    assert device.subscribe(f"own/d-{dev}") == 1
    assert device.connack.is_set() and not device.disconnected.is_set()
    watcher.close()
    device.close()


def test_rule_changes_apply_to_connected_clients_and_no_match_allow(broker):
    user = uid("live")
    add_user(broker, user, "pw")
    client = Client(broker, uid("c"), user, "pw")
    assert client.subscribe("live/x") == 128
    set_rules(broker, f'{{allow, {{username, "{user}"}}, subscribe, ["live/#"]}}.')
    assert client.subscribe("live/x") == 1
    assert client.subscribe("live/#") == 1
    assert client.subscribe("other") == 128
    status, settings = call(broker, "PUT", "/authorization/settings",
                            {"no_match": "allow", "deny_action": "ignore", "cache": {"enable": False}})
    assert status == 200 and settings == {"no_match": "allow", "deny_action": "ignore", "cache": {"enable": False}}
    assert call(broker, "GET", "/authorization/settings")[1]["no_match"] == "allow"
    assert client.subscribe("other") == 1
    set_rules(broker, '{deny, all, subscribe, ["other"]}.')
    assert client.subscribe("other") == 128
    client.close()


def test_bad_acl_text_is_400_and_keeps_the_rules(broker):
    good = '{allow, all, publish, ["a/#"]}.'
    set_rules(broker, good)
    for bad in ('{allow, all, publish, ["a/#/b"]}.', "{allow, all}", '{allow, everyone, publish, ["a"]}.'):
        status, body = call(broker, "PUT", "/authorization/sources/file", {"type": "file", "enable": True,
                                                                          "rules": bad})
        assert status == 400 and body["code"] == "BAD_REQUEST"
    assert call(broker, "GET", "/authorization/sources/file") == (200, {"type": "file", "enable": True,
                                                                         "rules": good})
    assert call(broker, "PUT", "/authorization/settings", {"no_match": "maybe"})[0] == 400


def test_will_messages_are_authorized_and_deny_action_disconnect(broker):
    user, admin = uid("will"), uid("admin")
    add_user(broker, user, "pw")
    add_user(broker, admin, "pw", superuser=True)
    set_rules(broker, '{allow, all, publish, ["ok/#"]}.')
    watcher = Client(broker, uid("w"), admin, "pw")
    assert watcher.subscribe("#") == 1
    denied = Client(broker, uid("d"), user, "pw", will=("secret/will", b"nope"))
    allowed = Client(broker, uid("a"), user, "pw", will=("ok/will", b"bye"))
    for client in (denied, allowed):  # kicked, so the will is due
        assert call(broker, "DELETE", f"/clients/{client.c._client_id.decode()}")[0] == 204
        assert client.disconnected.wait(5)
        client.c.loop_stop()
    assert wait_for(lambda: watcher.messages)
    time.sleep(0.2)
    assert watcher.messages == [("ok/will", b"bye")]

    call(broker, "PUT", "/authorization/settings", {"deny_action": "disconnect"})
    try:
        rude = Client(broker, uid("r"), user, "pw")
        rude.c.publish("not/allowed", b"x")
        assert rude.disconnected.wait(5), "deny_action=disconnect did not disconnect"
        rude.c.loop_stop()
    finally:
        call(broker, "PUT", "/authorization/settings", {"deny_action": "ignore"})
    watcher.close()


# --- clients, stats, metrics ---------------------------------------------------------------------------------


def test_clients_list_kick_stats_and_metrics(broker):
    user, admin = uid("kick"), uid("admin")
    add_user(broker, user, "pw")
    add_user(broker, admin, "pw", superuser=True)
    before = call(broker, "GET", "/metrics?aggregate=true")[1]
    watcher = Client(broker, uid("w"), admin, "pw")
    watcher.subscribe(f"k/{user}")
    client_id = uid("kicked")
    client = Client(broker, client_id, user, "pw")

    status, page = call(broker, "GET", f"/clients?like_username={user}&page=1&limit=10")
    assert status == 200 and page["meta"]["count"] == 1
    info = page["data"][0]
    assert (info["clientid"], info["username"], info["ip_address"]) == (client_id, user, "127.0.0.1")
    assert info["proto_name"] == "MQTT" and info["proto_ver"] == 4 and info["connected"] is True
    assert dt.datetime.fromisoformat(info["connected_at"]).tzinfo is not None
    assert call(broker, "GET", f"/clients?like_clientid={client_id[:-1]}")[1]["data"][0]["clientid"] == client_id

    stats = call(broker, "GET", "/stats?aggregate=true")[1]
    assert stats["connections.count"] >= 2 and stats["live_connections.count"] >= 2
    assert stats["subscriptions.count"] >= 1 and stats["topics.count"] >= 1
    set_rules(broker, '{allow, all, publish, ["k/${username}"]}.')
    client.publish(f"k/{user}", b"1")
    assert wait_for(lambda: watcher.messages)
    count = call(broker, "GET", "/stats?aggregate=true")[1]["connections.count"]

    assert call(broker, "DELETE", f"/clients/{client_id}") == (204, None)
    assert client.disconnected.wait(5), "paho saw no disconnect"
    client.c.loop_stop()
    assert call(broker, "GET", f"/clients?like_username={user}")[1]["data"] == []
    assert call(broker, "DELETE", f"/clients/{client_id}")[1]["code"] == "CLIENTID_NOT_FOUND"
    assert call(broker, "GET", "/stats?aggregate=true")[1]["connections.count"] == count - 1

    after = call(broker, "GET", "/metrics?aggregate=true")[1]
    assert after["messages.received"] >= before["messages.received"] + 1
    assert after["messages.sent"] >= before["messages.sent"] + 1
    assert after["client.connected"] >= before["client.connected"] + 2
    assert after["client.authenticate"] >= before["client.authenticate"] + 2
    status, text = call(broker, "GET", "/prometheus/stats", auth=None)
    assert status == 200 and f"emqx_messages_received {after['messages.received']}" in text.splitlines()
    assert "# TYPE emqx_connections_count gauge" in text
    assert broker.request("GET", "/stats?aggregate=true")[1]["connections.count"] == count - 1
    per_node = call(broker, "GET", "/metrics")[1]
    assert per_node[0]["node"] == f"emqx@{broker.host}" and "authorization.deny" in per_node[0]
    watcher.close()


def test_auth_failures_and_denies_are_counted(broker):
    before = call(broker, "GET", "/metrics?aggregate=true")[1]
    assert not connects(broker, uid("anon"))
    user = uid("deny")
    add_user(broker, user, "pw")
    client = Client(broker, uid("c"), user, "pw")
    assert client.subscribe("nope") == 128
    client.publish("nope", b"x")
    after = wait_for(lambda: (m := call(broker, "GET", "/metrics?aggregate=true")[1])["messages.received"]
                     > before["messages.received"] and m)
    assert after["client.auth.failure"] == before["client.auth.failure"] + 1
    assert after["authorization.deny"] >= before["authorization.deny"] + 2
    assert after["messages.dropped"] >= before["messages.dropped"] + 1
    client.close()


# --- listeners -----------------------------------------------------------------------------------------------


def test_websocket_listener(broker):
    user = uid("ws")
    add_user(broker, user, "pw", superuser=True)
    client = Client(broker, uid("c"), user, "pw", transport="websockets")
    assert client.accepted
    assert client.subscribe("ws/t") == 1
    client.publish("ws/t", b"over websockets")
    assert wait_for(lambda: client.messages) == [("ws/t", b"over websockets")]
    client.close()
    assert not connects(broker, uid("c"), transport="websockets")


def test_mqtts_verifies_against_the_ca(broker, tmp_path):
    user = uid("tls")
    add_user(broker, user, "pw")
    client = Client(broker, uid("c"), user, "pw", port=broker.ports["mqtts"], ca=broker.ca)
    assert client.accepted
    client.close()
    other_ca = make_tls(tmp_path, broker.host)[0]  # a CA that did not sign the broker's certificate
    with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        Client(broker, uid("c"), user, "pw", port=broker.ports["mqtts"], ca=other_ca)


# --- process -------------------------------------------------------------------------------------------------


def test_sigterm_exits_zero_and_state_dir_survives_a_restart(keys_file, tmp_path):
    state = tmp_path / "state"
    first = start_broker_on_free_address(bootstrap_file=keys_file, state_dir=state)
    try:
        add_user(first, "kept", "pw")
        set_rules(first, '{allow, all, publish, ["kept/#"]}.')
        held = Client(first, "held", "kept", "pw")
        with pytest.raises(BrokerStartError) as taken:  # the same address again: a clear failure
            start_broker(first.host, bootstrap_file=keys_file, timeout=10)
        assert taken.value.address_in_use and taken.value.returncode == 2
        first.proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert first.proc.wait(5) == 0, first.logs()
        assert time.monotonic() - started < 2.5
        assert held.disconnected.wait(3)
        held.c.loop_stop()
    finally:
        first.stop()
    with start_broker(first.host, bootstrap_file=keys_file, state_dir=state) as second:
        assert call(second, "GET", f"{AUTHN}/users")[1]["data"] == [{"user_id": "kept", "is_superuser": False}]
        assert call(second, "GET", "/authorization/sources/file")[1]["rules"] == '{allow, all, publish, ["kept/#"]}.'
        back = Client(second, "back", "kept", "pw")
        assert back.accepted
        back.close()
