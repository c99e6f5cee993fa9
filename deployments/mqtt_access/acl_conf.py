"""Rendering the ACL into EMQX 5's ``file`` authorization source (acl.conf), which the broker loads through
``PUT /api/v5/authorization/sources/file`` without a restart.

The file source, unlike the built-in database source, keeps the rules in the order written (the built-in
database checks username rules, then clientid rules, then rules for all), so it is the one that gives the
contract's "first rule that applies decides". ``no_match`` is not a rule: it is the authorization setting
(``PUT /api/v5/authorization/settings``), applied after the HTTP authorizer too.
"""

from __future__ import annotations

from deployments.mqtt_access.validation import EQ_PREFIX, AclRule

HEADER = "%% -*- coding: utf-8 -*-\n%% Rendered by the mqcloud control plane; edits on the broker are overwritten.\n"


def erlang_string(value: str) -> str:
    """A double-quoted Erlang string (the validators already refused control characters)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _who(who: str | dict[str, str]) -> str:
    if who == "all" or not isinstance(who, dict):
        return "all"
    (key, name), = who.items()
    return f"{{{key}, {erlang_string(name)}}}"


def _topic(topic_filter: str) -> str:
    if topic_filter.startswith(EQ_PREFIX):
        return f"{{eq, {erlang_string(topic_filter[len(EQ_PREFIX):])}}}"
    return erlang_string(topic_filter)


def render_rule(rule: AclRule) -> str:
    topics = ", ".join(_topic(topic) for topic in rule.topics)
    return f"{{{rule.permission}, {_who(rule.who)}, {rule.action}, [{topics}]}}."


def render_acl_conf(rules: list[AclRule]) -> str:
    """The whole file: one rule per line, in order."""
    return HEADER + "".join(render_rule(rule) + "\n" for rule in rules)
