"""What a built-in database user and an ACL rule may look like (pure: no database, no Django models).

Usernames are compared after Unicode NFKC normalisation and case folding, so ``Sensor-1``, ``sensor-1`` and a
full-width ``ｓｅｎｓｏｒ-1`` cannot be three users whose owners think they are one; the username kept is the
NFC form the customer typed (what the device sends). Topic filters follow MQTT 5 §4.7: ``#`` only as the
whole last level, ``+`` only as a whole level, no NUL; ``${username}`` and ``${clientid}`` expand per client;
``eq `` in front matches the text literally (wildcards included), as in EMQX.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

USERNAME_MAX = 128
PASSWORD_MIN = 8
PASSWORD_MAX_BYTES = 256
TOPIC_MAX_BYTES = 4096
RULES_MAX = 500
TOPICS_PER_RULE_MAX = 50
IMPORT_MAX = 100_000

PERMISSIONS = ("allow", "deny")
ACTIONS = ("publish", "subscribe", "all")
NO_MATCH = ("deny", "allow")
WHO_KEYS = ("username", "clientid")
PLACEHOLDERS = ("username", "clientid")
EQ_PREFIX = "eq "

_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")


class Invalid(ValueError):
    """A value that cannot be used; ``str()`` is the message shown next to the field."""


@dataclass(frozen=True)
class AclRule:
    permission: str
    who: str | dict[str, str]  # "all", {"username": …} or {"clientid": …}
    action: str
    topics: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"permission": self.permission, "who": self.who, "action": self.action, "topics": list(self.topics)}


def _no_control_characters(value: str, what: str) -> None:
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise Invalid(f"{what} must not contain control characters (NUL, newline, …).")


def username_clean(value: object) -> str:
    """The username to keep (NFC), or ``Invalid``."""
    if not isinstance(value, str):
        raise Invalid("Must be a string.")
    value = unicodedata.normalize("NFC", value)
    if not value:
        raise Invalid("Must not be empty.")
    if len(value) > USERNAME_MAX:
        raise Invalid(f"At most {USERNAME_MAX} characters.")
    if value != value.strip():
        raise Invalid("Must not start or end with white space.")
    _no_control_characters(value, "A username")
    return value


def username_key(username: str) -> str:
    """What two usernames are compared by: equal keys are the same user."""
    return unicodedata.normalize("NFKC", username).casefold()


def password_clean(value: object) -> str:
    if not isinstance(value, str):
        raise Invalid("Must be a string.")
    if len(value) < PASSWORD_MIN:
        raise Invalid(f"At least {PASSWORD_MIN} characters.")
    if len(value.encode()) > PASSWORD_MAX_BYTES:
        raise Invalid(f"At most {PASSWORD_MAX_BYTES} bytes.")
    if "\x00" in value:
        raise Invalid("Must not contain NUL.")
    return value


def topic_filter_clean(value: object) -> str:
    """A topic filter as the broker will match it, or ``Invalid`` saying what is wrong."""
    if not isinstance(value, str):
        raise Invalid("Must be a string.")
    literal = value.startswith(EQ_PREFIX)
    body = value[len(EQ_PREFIX):] if literal else value
    if not body:
        raise Invalid("A topic filter must not be empty.")
    if len(value.encode()) > TOPIC_MAX_BYTES:
        raise Invalid(f"A topic filter is at most {TOPIC_MAX_BYTES} bytes.")
    _no_control_characters(body, "A topic filter")
    for name in _PLACEHOLDER.findall(body):
        if name not in PLACEHOLDERS:
            raise Invalid(f"Unknown placeholder ${{{name}}}: use ${{username}} or ${{clientid}}.")
    if literal:
        return value
    levels = body.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise Invalid("'#' must be a whole level and the last one (e.g. sensors/#).")
        if "+" in level and level != "+":
            raise Invalid("'+' must be a whole level (e.g. sensors/+/temperature).")
    return value


def _who_clean(value: object) -> str | dict[str, str]:
    if value == "all":
        return "all"
    if isinstance(value, dict) and len(value) == 1:
        (key, name), = value.items()
        if key in WHO_KEYS:
            if not isinstance(name, str) or not name or len(name) > USERNAME_MAX:
                raise Invalid(f"who.{key} must be 1 to {USERNAME_MAX} characters.")
            _no_control_characters(name, f"who.{key}")
            return {key: unicodedata.normalize("NFC", name)}
    raise Invalid('who must be "all", {"username": …} or {"clientid": …}.')


def acl_rule_clean(value: object) -> AclRule:
    if not isinstance(value, dict):
        raise Invalid("A rule must be an object.")
    unknown = sorted(set(value) - {"permission", "who", "action", "topics"})
    if unknown:
        raise Invalid(f"Unknown field {unknown[0]!r}.")
    permission, action, topics = value.get("permission"), value.get("action", "all"), value.get("topics")
    if permission not in PERMISSIONS:
        raise Invalid('permission must be "allow" or "deny".')
    if action not in ACTIONS:
        raise Invalid('action must be "publish", "subscribe" or "all".')
    who = _who_clean(value.get("who", "all"))
    if not isinstance(topics, list) or not topics:
        raise Invalid("topics must be a non-empty list of topic filters.")
    if len(topics) > TOPICS_PER_RULE_MAX:
        raise Invalid(f"At most {TOPICS_PER_RULE_MAX} topic filters per rule.")
    cleaned = []
    for index, topic in enumerate(topics):
        try:
            cleaned.append(topic_filter_clean(topic))
        except Invalid as exc:
            raise Invalid(f"topics[{index}]: {exc}") from None
    return AclRule(permission, who, action, tuple(cleaned))


def acl_rules_clean(value: object) -> tuple[list[AclRule], dict[str, list[str]]]:
    """The rules, and the field errors keyed ``rules[i]`` (empty when every rule is valid)."""
    if not isinstance(value, list):
        return [], {"rules": ["Must be a list of rules."]}
    if len(value) > RULES_MAX:
        return [], {"rules": [f"At most {RULES_MAX} rules."]}
    rules, problems = [], {}
    for index, raw in enumerate(value):
        try:
            rules.append(acl_rule_clean(raw))
        except Invalid as exc:
            problems[f"rules[{index}]"] = [str(exc)]
    return rules, problems


# --- what the broker decides: the same matching the broker stand-in and the console's "would this be allowed"
def _expand(topic_filter: str, username: str, clientid: str) -> str:
    return topic_filter.replace("${username}", username).replace("${clientid}", clientid)


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT matching of a concrete ``topic`` against ``topic_filter`` (``$``-topics not matched by wildcards
    in the first level, MQTT 5 §4.7.2)."""
    filter_levels, topic_levels = topic_filter.split("/"), topic.split("/")
    if topic.startswith("$") and filter_levels[0] in ("+", "#"):
        return False
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)


def rule_applies(rule: AclRule, *, username: str, clientid: str, action: str, topic: str) -> bool:
    if rule.action != "all" and rule.action != action:
        return False
    if isinstance(rule.who, dict):
        (key, name), = rule.who.items()
        if (username if key == "username" else clientid) != name:
            return False
    for topic_filter in rule.topics:
        if topic_filter.startswith(EQ_PREFIX):
            if _expand(topic_filter[len(EQ_PREFIX):], username, clientid) == topic:
                return True
        elif topic_matches(_expand(topic_filter, username, clientid), topic):
            return True
    return False


def acl_first_match(rules: list[AclRule], *, username: str, clientid: str, action: str,
                    topic: str) -> int | None:
    """The index of the first rule that applies (the one that decides), or ``None``."""
    for index, rule in enumerate(rules):
        if rule_applies(rule, username=username, clientid=clientid, action=action, topic=topic):
            return index
    return None


def acl_decide(rules: list[AclRule], *, username: str, clientid: str, action: str, topic: str) -> str | None:
    """``allow``/``deny`` from the first rule that applies, or ``None`` (the next authorizer, then no_match)."""
    index = acl_first_match(rules, username=username, clientid=clientid, action=action, topic=topic)
    return None if index is None else rules[index].permission
