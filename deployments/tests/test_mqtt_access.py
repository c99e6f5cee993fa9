"""MQTT access (issue 13): built-in database users and the ACL — the rules, the hashes, and the API."""

from __future__ import annotations

import hashlib

import pytest

from deployments.models import Deployment, MqttAccess, MqttUser
from deployments.mqtt_access import hashing
from deployments.mqtt_access.acl_conf import render_acl_conf
from deployments.mqtt_access.validation import (
    AclRule,
    Invalid,
    acl_decide,
    acl_first_match,
    topic_filter_clean,
    topic_matches,
    username_clean,
    username_key,
)
from projects.models import AuditEvent
from projects.roles import Role
from projects.tests.factories import OrganizationFactory, ProjectFactory, make_api_key


# --- pure rules ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("topic_filter", ["a", "a/b", "a/+/c", "a/#", "#", "+", "+/+", "/a", "a//b",
                                          "dev/${username}/#", "eq a/#", "eq +", "$SYS/#"])
def test_valid_topic_filters(topic_filter: str) -> None:
    assert topic_filter_clean(topic_filter) == topic_filter


@pytest.mark.parametrize(("topic_filter", "why"), [
    ("", "empty"), ("eq ", "empty"), ("a/#/b", "'#'"), ("a#", "'#'"), ("a/b#", "'#'"), ("a+/b", "whole level"),
    ("a/+b", "whole level"), ("a\x00b", "control"), ("x/${password}", "Unknown placeholder"), ("a" * 5000, "bytes"),
])
def test_invalid_topic_filters_say_why(topic_filter: str, why: str) -> None:
    with pytest.raises(Invalid, match=why if why != "empty" else "empty"):
        topic_filter_clean(topic_filter)


def test_usernames_differing_by_case_or_unicode_form_are_one_user() -> None:
    assert username_key("Sensor-1") == username_key("sensor-1") == username_key("ｓｅｎｓｏｒ-1")
    assert username_clean("cafe\u0301") == "café"  # kept as NFC
    for bad in ("", " lead", "trail ", "a\x00b", "x" * 129, 7):
        with pytest.raises(Invalid):
            username_clean(bad)


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), [
    ("a/+/c", "a/b/c", True), ("a/+/c", "a/b/d", False), ("a/#", "a", True), ("a/#", "a/b/c", True),
    ("#", "$SYS/x", False), ("+/x", "$SYS/x", False), ("$SYS/#", "$SYS/x", True), ("a/b", "a/b/c", False),
    ("a/#", "a/#", True), ("a/b", "#", False),
])
def test_topic_matching(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


def test_acl_decides_by_the_first_rule_that_applies_with_placeholders_and_eq() -> None:
    rules = [
        AclRule("deny", {"username": "mallory"}, "all", ("#",)),
        AclRule("allow", "all", "publish", ("dev/${username}/#",)),
        AclRule("allow", {"clientid": "c1"}, "subscribe", ("eq cmd/#",)),
    ]

    def decide(username: str, clientid: str, action: str, topic: str) -> str | None:
        return acl_decide(rules, username=username, clientid=clientid, action=action, topic=topic)

    assert decide("alice", "c9", "publish", "dev/alice/temp") == "allow"
    assert decide("alice", "c9", "publish", "dev/bob/temp") is None
    assert decide("alice", "c9", "subscribe", "dev/alice/temp") is None
    assert decide("mallory", "c9", "publish", "dev/mallory/x") == "deny"
    assert decide("bob", "c1", "subscribe", "cmd/#") == "allow"
    assert decide("bob", "c1", "subscribe", "cmd/x") is None  # eq: literal only


def test_acl_first_match_names_the_deciding_rule_as_the_broker_would() -> None:
    rules = [
        AclRule("deny", {"username": "mallory"}, "all", ("#",)),
        AclRule("allow", "all", "publish", ("dev/${clientid}/+/state", "eq raw/#")),
        AclRule("allow", {"clientid": "c1"}, "all", ("cmd/#",)),
    ]

    def first(username: str, clientid: str, action: str, topic: str) -> int | None:
        return acl_first_match(rules, username=username, clientid=clientid, action=action, topic=topic)

    assert first("mallory", "c1", "publish", "cmd/x") == 0  # the earlier deny wins over the later allow
    assert first("alice", "c7", "publish", "dev/c7/lamp/state") == 1
    assert first("alice", "c7", "publish", "dev/c8/lamp/state") is None  # ${clientid} expands per client
    assert first("alice", "c7", "publish", "raw/#") == 1 and first("alice", "c7", "publish", "raw/x") is None
    assert first("alice", "c1", "subscribe", "cmd/a/b") == 2
    assert first("alice", "c7", "subscribe", "$SYS/x") is None
    assert acl_first_match([], username="a", clientid="b", action="publish", topic="t") is None


def test_pbkdf2_hash_is_what_emqx_computes_from_the_same_config() -> None:
    stored = hashing.hash_password("correct horse")
    expected = hashlib.pbkdf2_hmac("sha256", b"correct horse", stored.salt.encode(), 4096, 32).hex()
    assert (stored.algorithm, stored.password_hash) == ("pbkdf2_sha256", expected)
    assert hashing.verify_password(stored, "correct horse")
    assert not hashing.verify_password(stored, "correct horsE")
    assert hashing.hash_password("correct horse").salt != stored.salt


def test_imported_hashes_must_be_the_brokers_scheme() -> None:
    salt = "importedsalt"
    key = hashlib.pbkdf2_hmac("sha256", b"legacy-pass", salt.encode(), 4096, 32).hex().upper()
    assert hashing.imported_hash_problem("pbkdf2_sha256", key, salt) is None
    stored = hashing.imported_hash("pbkdf2_sha256", key, salt)
    assert stored.password_hash == key.lower() and hashing.verify_password(stored, "legacy-pass")
    assert "hex" in hashing.imported_hash_problem("pbkdf2_sha256", "zz", "saltsalt")
    assert "salt" in hashing.imported_hash_problem("pbkdf2_sha256", key, "bad salt!")
    assert "algorithm" in hashing.imported_hash_problem("bcrypt", "$2b$10$x", "")


# --- API ------------------------------------------------------------------------------------------------
pytestmark_db = pytest.mark.django_db


def users_url(deployment: Deployment, suffix: str = "") -> str:
    return f"/api/v1/deployments/{deployment.id}/mqtt-users{suffix}"


@pytest.mark.django_db
def test_create_with_generated_password_shows_it_once_and_stores_only_a_hash(api, deployment) -> None:
    response = api.post(users_url(deployment), {"username": "sensor-1"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    password = body["password"]
    assert len(password) >= 20 and body["username"] == "sensor-1" and body["is_superuser"] is False
    user = MqttUser.objects.get(deployment=deployment)
    assert password not in (user.password_hash, user.salt)
    assert hashing.verify_password(hashing.PasswordHash(user.algorithm, user.password_hash, user.salt), password)
    listed = api.get(users_url(deployment)).json()["results"]
    assert listed == [{"username": "sensor-1", "is_superuser": False, "created_at": listed[0]["created_at"],
                       "updated_at": listed[0]["updated_at"]}]
    assert "password" not in api.get(users_url(deployment, "/sensor-1")).json()
    event = AuditEvent.objects.get(action="deployment.mqtt_user.create")
    assert event.changes == {"username": "sensor-1", "is_superuser": False, "password": "generated"}
    assert MqttAccess.objects.get(deployment=deployment).generation == 1


@pytest.mark.django_db
@pytest.mark.parametrize("other", ["SENSOR-1", "ｓｅｎｓｏｒ-1"])
def test_duplicate_usernames_by_case_or_unicode_form_are_409(api, deployment, other) -> None:
    assert api.post(users_url(deployment), {"username": "sensor-1", "password": "p4ssword!"},
                    format="json").status_code == 201
    response = api.post(users_url(deployment), {"username": other, "password": "p4ssword!"}, format="json")
    assert response.status_code == 409 and response["Content-Type"] == "application/problem+json"
    assert MqttUser.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "field"), [
    ({"username": "a", "password": ""}, "password"),
    ({"username": "a", "password": "x" * 10_240}, "password"),
    ({"username": "", "password": "p4ssword!"}, "username"),
    ({"username": "a\x00b", "password": "p4ssword!"}, "username"),
    ({"username": "a", "password": "p4ssword!", "role": "x"}, "role"),
])
def test_bad_users_are_400_next_to_the_field(api, deployment, body, field) -> None:
    response = api.post(users_url(deployment), body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    assert not MqttUser.objects.exists()


@pytest.mark.django_db
def test_patch_and_delete_a_user(api, deployment) -> None:
    api.post(users_url(deployment), {"username": "Gate", "password": "first-pass"}, format="json")
    response = api.patch(users_url(deployment, "/gate"), {"password": "second-pass", "is_superuser": True},
                         format="json")
    assert response.status_code == 200 and response.json()["is_superuser"] is True
    user = MqttUser.objects.get()
    assert hashing.verify_password(hashing.PasswordHash(user.algorithm, user.password_hash, user.salt),
                                   "second-pass")
    assert api.delete(users_url(deployment, "/Gate")).status_code == 204
    assert api.get(users_url(deployment, "/Gate")).status_code == 404
    assert list(AuditEvent.objects.filter(action__startswith="deployment.mqtt_user").order_by("created_at")
                .values_list("action", flat=True)) == ["deployment.mqtt_user.create", "deployment.mqtt_user.update",
                                                        "deployment.mqtt_user.delete"]
    assert MqttAccess.objects.get(deployment=deployment).generation == 3


@pytest.mark.django_db
def test_import_dry_run_then_all_or_nothing(api, deployment) -> None:
    api.post(users_url(deployment), {"username": "kept", "password": "same-pass"}, format="json")
    api.post(users_url(deployment), {"username": "changed", "password": "old-pass1"}, format="json")
    legacy = hashlib.pbkdf2_hmac("sha256", b"legacy-pass", b"legacysalt", 4096, 32).hex()
    users = [{"username": "kept", "password": "same-pass"}, {"username": "changed", "password": "new-pass1"},
             {"username": "new", "password_hash": legacy, "salt": "legacysalt", "algorithm": "pbkdf2_sha256"},
             {"username": "NEW", "password": "whatever1"}, {"username": "short", "password": "x"}]
    dry = api.post(users_url(deployment, "/import?dry_run=true"), {"users": users}, format="json")
    assert dry.status_code == 200, dry.content
    assert dry.json() | {"errors": None} == {"created": 1, "updated": 1, "unchanged": 1, "errors": None,
                                            "errors_total": 2, "dry_run": True}
    assert [(e["index"], e["username"]) for e in dry.json()["errors"]] == [(3, "NEW"), (4, "short")]
    real = api.post(users_url(deployment, "/import"), {"users": users}, format="json")
    assert real.status_code == 400 and set(real.json()["errors"]) == {"users[3]", "users[4]"}
    assert MqttUser.objects.count() == 2  # nothing half-applied
    good = api.post(users_url(deployment, "/import"), {"users": users[:3]}, format="json")
    assert good.json() == {"created": 1, "updated": 1, "unchanged": 1, "errors": [], "errors_total": 0,
                           "dry_run": False}
    new = MqttUser.objects.get(username="new")
    assert hashing.verify_password(hashing.PasswordHash(new.algorithm, new.password_hash, new.salt), "legacy-pass")
    again = api.post(users_url(deployment, "/import"), {"users": users[:3]}, format="json").json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 3)


@pytest.mark.django_db
def test_acl_defaults_put_and_refusals(api, deployment) -> None:
    url = f"/api/v1/deployments/{deployment.id}/acl"
    assert api.get(url).json() == {"rules": [], "no_match": "deny", "generation": 0, "applied_generation": 0}
    rules = [{"permission": "allow", "who": "all", "action": "publish", "topics": ["dev/${username}/#"]},
             {"permission": "deny", "who": {"clientid": "legacy"}, "action": "all", "topics": ["eq #"]}]
    response = api.put(url, {"rules": rules}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["rules"] == rules and response.json()["generation"] == 1
    bad = api.put(url, {"rules": [{"permission": "allow", "topics": ["a/#/b"]}], "no_match": "maybe"},
                  format="json")
    assert bad.status_code == 400 and set(bad.json()["errors"]) == {"rules[0]", "no_match"}
    assert api.get(url).json()["rules"] == rules
    assert AuditEvent.objects.filter(action="deployment.acl.update").count() == 1


@pytest.mark.django_db
def test_other_tenants_viewers_and_limited_members_are_kept_out(api, deployment, org, make_client) -> None:
    api.post(users_url(deployment), {"username": "d1", "password": "p4ssword!"}, format="json")
    other_org = OrganizationFactory()
    _, other_secret = make_api_key(other_org, role=Role.OWNER)
    outsider = make_client(other_secret)
    for method, path in [("get", users_url(deployment)), ("get", users_url(deployment, "/d1")),
                         ("post", users_url(deployment)), ("delete", users_url(deployment, "/d1")),
                         ("get", f"/api/v1/deployments/{deployment.id}/acl")]:
        assert getattr(outsider, method)(path, {"username": "x"} if method == "post" else None,
                                         format="json").status_code == 404, (method, path)
    _, viewer_secret = make_api_key(org, role=Role.VIEWER)
    viewer = make_client(viewer_secret)
    assert viewer.get(users_url(deployment)).status_code == 200
    assert viewer.post(users_url(deployment), {"username": "v"}, format="json").status_code == 403
    assert viewer.put(f"/api/v1/deployments/{deployment.id}/acl", {"rules": []}, format="json").status_code == 403
    elsewhere = ProjectFactory(organization=org)
    _, limited_secret = make_api_key(org, role=Role.DEVELOPER, projects=[elsewhere])
    limited = make_client(limited_secret)
    assert limited.get(users_url(deployment)).status_code == 404
    assert MqttUser.objects.count() == 1


def test_acl_renders_into_emqx_file_source_rules_in_order() -> None:
    text = render_acl_conf([
        AclRule("deny", {"username": 'we"ird\\'}, "all", ("#",)),
        AclRule("allow", "all", "publish", ("dev/${username}/#", "eq cmd/+")),
        AclRule("allow", {"clientid": "c1"}, "subscribe", ("ü/+",)),
    ])
    assert text.splitlines()[2:] == [
        '{deny, {username, "we\\"ird\\\\"}, all, ["#"]}.',
        '{allow, all, publish, ["dev/${username}/#", {eq, "cmd/+"}]}.',
        '{allow, {clientid, "c1"}, subscribe, ["ü/+"]}.',
    ]
    assert text.startswith("%% -*- coding: utf-8 -*-\n")


@pytest.mark.django_db
def test_a_broker_without_a_callable_address_has_no_clients(api, deployment) -> None:
    """A running deployment whose endpoints are not loopback (outside production nothing else is called) or
    not known yet: nobody is connected to it, so the list is empty and a kick finds nobody."""
    deployment.endpoints = {"mqtt": "emqx-public.mq-x.lb.sim.mqcloud.localhost:1883"}
    deployment.save(update_fields=["endpoints"])
    assert api.get(f"/api/v1/deployments/{deployment.id}/clients").json() == {"results": [], "next": None}
    assert api.delete(f"/api/v1/deployments/{deployment.id}/clients/c1").status_code == 404


@pytest.mark.django_db
def test_import_writes_the_rows_the_model_would_and_updates_in_place(deployment, org) -> None:
    """The import writes new users with COPY, not the ORM: the rows must be what ``MqttUser(...)`` would be."""
    from django.utils import timezone

    from deployments.mqtt_access.imports import mqtt_users_import
    from projects.tenancy import Principal

    principal = Principal.for_system(org)
    legacy = hashlib.pbkdf2_hmac("sha256", b"legacy-pass", b"legacysalt", 4096, 32).hex()
    first = [{"username": "Plain-1", "password": "first-pass"},
             {"username": "hashed", "password_hash": legacy.upper(), "salt": "legacysalt",
              "algorithm": "pbkdf2_sha256", "is_superuser": True}]
    started = timezone.now()
    result = mqtt_users_import(principal=principal, deployment=deployment, users=first)
    assert result.as_dict() == {"created": 2, "updated": 0, "unchanged": 0, "errors": [], "errors_total": 0}
    users = {user.username: user for user in MqttUser.objects.filter(deployment=deployment)}
    for user in users.values():
        user.full_clean()
        assert user.id.startswith("mqu_") and len(user.id) == 24
        assert started <= user.created_at <= user.updated_at <= timezone.now()
    plain, hashed = users["Plain-1"], users["hashed"]
    assert (plain.username_key, plain.is_superuser, plain.algorithm) == ("plain-1", False, "pbkdf2_sha256")
    assert hashing.verify_password(hashing.PasswordHash(plain.algorithm, plain.password_hash, plain.salt),
                                   "first-pass")
    assert (hashed.password_hash, hashed.salt, hashed.is_superuser) == (legacy, "legacysalt", True)
    assert MqttAccess.objects.get(deployment=deployment).generation == 1

    again = [{"username": "plain-1", "password": "first-pass"},  # same user, other case: unchanged
             {"username": "hashed", "password_hash": legacy, "salt": "legacysalt", "algorithm": "pbkdf2_sha256"},
             {"username": "new", "password_hash": legacy, "salt": "legacysalt", "algorithm": "pbkdf2_sha256"}]
    result = mqtt_users_import(principal=principal, deployment=deployment, users=again)
    assert (result.created, result.updated, result.unchanged) == (1, 2, 0)  # the username's case is kept anew
    assert MqttUser.objects.get(pk=hashed.pk).is_superuser is False
    assert MqttUser.objects.get(pk=plain.pk).username == "plain-1"
    assert MqttUser.objects.filter(deployment=deployment).count() == 3
    assert MqttAccess.objects.get(deployment=deployment).generation == 2
    assert mqtt_users_import(principal=principal, deployment=deployment, users=again).as_dict() == {
        "created": 0, "updated": 0, "unchanged": 3, "errors": [], "errors_total": 0}
