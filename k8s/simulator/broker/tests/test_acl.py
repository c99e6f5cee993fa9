"""The acl.conf subset and EMQX's topic matching, without a broker process."""

from __future__ import annotations

import pytest

from k8s.simulator.broker import acl
from k8s.simulator.broker.state import BrokerState, hash_password

RULES = r"""
% devices write under their own prefix
{allow, {username, "dev1"}, publish, ["dev/${username}/#"]}.
{allow, all, subscribe, ["cmd/${clientid}/+", {eq, "all/#"}]}.
{deny, {clientid, "bad\"id"}, all, ["#"]}.
{allow, all, publish, ["pub/#"]}.
{deny, all}.
"""


def test_parse_keeps_order_and_escapes():
    rules = acl.parse(RULES)
    assert [r.permission for r in rules] == ["allow", "allow", "deny", "allow", "deny"]
    assert rules[0].who == ("username", "dev1")
    assert rules[1].topics == ((False, "cmd/${clientid}/+"), (True, "all/#"))
    assert rules[2].who == ("clientid", 'bad"id')
    assert rules[4].topics is None and rules[4].action == "all"
    assert acl.parse("") == [] and acl.parse("% only a comment\n") == []


@pytest.mark.parametrize(
    "text",
    [
        '{allow, all, publish, ["a/#/b"]}.',  # '#' not last
        '{allow, all, publish, ["a/b+"]}.',  # '+' inside a level
        '{allow, all, publish, [""]}.',
        '{allow, all, publish, ["t/${password}"]}.',
        '{allow, all, publish, ["t"]}',  # missing final dot
        '{permit, all, publish, ["t"]}.',
        '{allow, {ipaddr, "127.0.0.1"}, publish, ["t"]}.',
        '{allow, all, retain, ["t"]}.',
        '{allow, all, publish, "t"}.',
        '{allow, all, publish, [{re, "t"}]}.',
        '{allow, all, publish, ["a\\nb"]}.',  # only \" and \\ escapes
        "{allow, all, publish, [t]}.",
        '{allow, all, publish, ["t"]}. garbage',
    ],
)
def test_parse_refuses_everything_else(text):
    with pytest.raises(acl.AclError, match="line"):
        acl.parse(text)


@pytest.mark.parametrize(
    ("name", "topic_filter", "expected"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/+", True),
        ("a/b/c", "a/+", False),
        ("a", "a/#", True),
        ("a/b/c", "a/#", True),
        ("a/b", "#", True),
        ("$SYS/x", "#", False),
        ("$SYS/x", "+/x", False),
        ("$SYS/x", "$SYS/#", True),
        # a subscription's filter against the rule's filter, as emqx_topic:match/2 does
        ("a/#", "a/#", True),
        ("a/#", "a/b", False),
        ("a/+", "a/b", False),
        ("a/+", "a/+", True),
        ("a/+/c", "a/#", True),
        ("#", "a/#", False),
    ],
)
def test_match_is_emqx_topic_match(name, topic_filter, expected):
    assert acl.match(name, topic_filter) is expected


def test_first_matching_rule_decides_with_placeholders():
    rules = acl.parse(RULES)
    assert acl.check(rules, "dev1", "c1", "publish", "dev/dev1/temp") == "allow"
    assert acl.check(rules, "dev2", "c1", "publish", "dev/dev2/temp") == "deny"  # rule 1 is dev1's only
    assert acl.check(rules, "dev1", "c1", "subscribe", "dev/dev1/temp") == "deny"  # publish-only rule
    assert acl.check(rules, "u", "c9", "subscribe", "cmd/c9/reboot") == "allow"
    assert acl.check(rules, "u", "c9", "subscribe", "cmd/c8/reboot") == "deny"
    assert acl.check(rules, "u", "c9", "subscribe", "all/#") == "allow"  # eq: literally this filter
    assert acl.check(rules, "u", "c9", "subscribe", "all/x") == "deny"
    assert acl.check(rules, "u", 'bad"id', "publish", "pub/x") == "deny"  # the deny comes first
    assert acl.check(rules, "u", "c1", "publish", "pub/x") == "allow"
    assert acl.check(acl.parse('{allow, all, publish, ["x"]}.'), "u", "c", "publish", "y") == "nomatch"


def test_eq_topics_expand_placeholders_too():
    rules = acl.parse('{allow, all, subscribe, [{eq, "u/${username}/#"}]}.')
    assert acl.check(rules, "ann", "c", "subscribe", "u/ann/#") == "allow"
    assert acl.check(rules, "ann", "c", "subscribe", "u/ann/x") == "nomatch"


def test_state_authenticates_with_pbkdf2_and_applies_no_match(tmp_path):
    state = BrokerState(tmp_path)
    salt = "s@lt"
    digest = hash_password("pw", salt)
    assert digest == __import__("hashlib").pbkdf2_hmac("sha256", b"pw", b"s@lt", 4096, 32).hex()
    result = state.import_users([{"user_id": "u", "password_hash": digest.upper(), "salt": salt}], hashed=True)
    assert result == {"total": 1, "success": 1, "override": 0, "skipped": 0, "failed": 0}
    assert state.authenticate("u", "pw") == (0, False)
    assert state.authenticate("u", "nope") == (4, False)
    assert state.authenticate("nobody", "pw") == (5, False)
    assert state.authenticate(None, None) == (5, False)
    assert state.authorize("u", "c", False, "publish", "t") is False  # default no_match: deny
    state.set_settings({"no_match": "allow"})
    assert state.authorize("u", "c", False, "publish", "t") is True
    assert state.authorize("u", "c", True, "publish", "t") is True
    state.set_source({"type": "file", "enable": True, "rules": '{deny, all, publish, ["t"]}.'})
    assert state.authorize("u", "c", False, "publish", "t") is False
    assert state.authorize("u", "c", True, "publish", "t") is True  # superusers skip authorization

    again = BrokerState(tmp_path)  # what a restarted process reads back
    assert again.authenticate("u", "pw") == (0, False)
    assert again.settings["no_match"] == "allow"
    assert again.rules_text == '{deny, all, publish, ["t"]}.'


def test_allow_anonymous_accepts_only_clients_without_a_username():
    state = BrokerState(allow_anonymous=True)
    state.import_users([{"user_id": "u", "password": "pw"}], hashed=False)
    assert state.authenticate(None, None) == (0, False)
    assert state.authenticate("", None) == (0, False)
    assert state.authenticate("u", "pw") == (0, False)
    assert state.authenticate("u", "nope") == (4, False)  # a user who names himself is still checked
    assert state.authenticate("nobody", "pw") == (5, False)
    assert state.authorize(None, "c", False, "publish", "t") is False  # anonymous is not superuser
    assert BrokerState().authenticate(None, None) == (5, False)  # off by default
