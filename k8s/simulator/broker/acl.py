"""EMQX 5's "file" authorization source (acl.conf), the subset the control plane renders, and EMQX's topic matching.

Grammar (Erlang terms, each ended by `.`; `%` starts a comment; strings take `\\"` and `\\\\` escapes):

    {allow|deny, all|{username, "u"}|{clientid, "c"}, publish|subscribe|all, [Topic, ...]}.
    {allow|deny, all}.                                   % every client, action and topic
    Topic = "t/#" | "dev/${username}/#" | {eq, "t/#"}

Rules are checked in order and the first that matches decides (`allow`/`deny`); none gives `nomatch`, which
the broker turns into the `no_match` setting. `${username}` and `${clientid}` expand in plain and `eq` topics.
A plain topic is matched as EMQX's `emqx_topic:match(Topic, RuleFilter)`: for a publish the topic name, for a
subscribe the client's filter (so rule `a/#` covers a subscription to `a/#` but rule `a/b` does not).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
PLACEHOLDERS = ("username", "clientid")


class AclError(ValueError):
    """The text is not in the accepted acl.conf subset; the message names the line."""


@dataclass(frozen=True)
class Atom:
    name: str
    line: int


@dataclass(frozen=True)
class Str:
    value: str
    line: int


@dataclass(frozen=True)
class Rule:
    permission: str  # "allow" | "deny"
    who: tuple[str, str | None]  # ("all", None) | ("username", u) | ("clientid", c)
    action: str  # "publish" | "subscribe" | "all"
    topics: tuple[tuple[bool, str], ...] | None  # (is_eq, template); None: every topic

    def decide(self, username: str | None, clientid: str, action: str, topic: str) -> str | None:
        kind, value = self.who
        if kind == "username" and username != value:
            return None
        if kind == "clientid" and clientid != value:
            return None
        if self.action != "all" and self.action != action:
            return None
        if self.topics is None:
            return self.permission
        for is_eq, template in self.topics:
            rendered = render(template, username, clientid)
            if rendered is None:
                continue
            if (topic == rendered) if is_eq else match(topic, rendered):
                return self.permission
        return None


def render(template: str, username: str | None, clientid: str) -> str | None:
    """Expand `${username}`/`${clientid}`; None when a placeholder has no value (the topic then matches nothing)."""
    values = {"username": username, "clientid": clientid}
    missing = False

    def sub(m: re.Match[str]) -> str:
        nonlocal missing
        value = values.get(m.group(1))
        if value is None:
            missing = True
            return ""
        return value

    out = PLACEHOLDER.sub(sub, template)
    return None if missing else out


def match(name: str, topic_filter: str) -> bool:
    """`emqx_topic:match/2`: `name` may itself be a filter (a subscription), matched level by level."""
    if name.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    names, filters = name.split("/"), topic_filter.split("/")
    i = 0
    while True:
        if i == len(filters):
            return i == len(names)
        if i < len(names) and names[i] == filters[i]:
            i += 1
            continue
        if i < len(names) and filters[i] == "+":
            i += 1
            continue
        return filters[i] == "#" and i == len(filters) - 1


def check(rules: list[Rule], username: str | None, clientid: str, action: str, topic: str) -> str:
    """`allow`, `deny` or `nomatch` for this client doing `action` ("publish"/"subscribe") on `topic`."""
    for rule in rules:
        decision = rule.decide(username, clientid, action, topic)
        if decision is not None:
            return decision
    return "nomatch"


def validate_filter(topic: str) -> str | None:
    """Why `topic` is not a valid MQTT topic filter, or None."""
    if topic == "":
        return "empty topic"
    if "\x00" in topic:
        return "NUL in topic"
    if len(topic.encode()) > 65535:
        return "topic too long"
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return "'#' must be a whole level and the last one"
        if "+" in level and level != "+":
            return "'+' must be a whole level"
    for name in PLACEHOLDER.findall(topic):
        if name not in PLACEHOLDERS:
            return f"unknown placeholder ${{{name}}}"
    return None


# --- parsing -------------------------------------------------------------------------------------------------

_TOKEN = re.compile(r'\s+|%[^\n]*|[{}\[\],.]|[a-z][A-Za-z0-9_]*|"(?:[^"\\\n]|\\["\\])*"')


def _tokens(text: str) -> list[object]:
    out: list[object] = []
    pos, line = 0, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise AclError(f"line {line}: unexpected {text[pos:pos + 20]!r}")
        tok = m.group(0)
        if tok[0] == '"':
            out.append(Str(re.sub(r"\\([\"\\])", r"\1", tok[1:-1]), line))
        elif tok[0].isalpha():
            out.append(Atom(tok, line))
        elif not tok[0].isspace() and tok[0] != "%":
            out.append(Atom(tok, line) if tok in "{}[],." else tok)
        line += tok.count("\n")
        pos = m.end()
    return out


class _Parser:
    def __init__(self, tokens: list[object]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> object | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def next_is(self, name: str) -> bool:
        """Whether the next token is the punctuation ``name``."""
        token = self.peek()
        return isinstance(token, Atom) and token.name == name

    def line(self) -> int:
        tok = self.peek() or (self.tokens[-1] if self.tokens else None)
        return getattr(tok, "line", 0)

    def take(self, punct: str) -> None:
        tok = self.peek()
        if not (isinstance(tok, Atom) and tok.name == punct):
            raise AclError(f"line {self.line()}: expected {punct!r}")
        self.pos += 1

    def term(self) -> object:
        tok = self.peek()
        if tok is None:
            raise AclError(f"line {self.line()}: unexpected end of text")
        if isinstance(tok, Atom) and tok.name in ("{", "["):
            close = "}" if tok.name == "{" else "]"
            self.pos += 1
            items: list[object] = []
            if not self.next_is(close):
                items.append(self.term())
                while self.next_is(","):
                    self.pos += 1
                    items.append(self.term())
            self.take(close)
            return tuple(items) if close == "}" else list(items)
        if isinstance(tok, Atom) and tok.name in "}],.":
            raise AclError(f"line {tok.line}: unexpected {tok.name!r}")
        self.pos += 1
        return tok


def _atom(term: object, allowed: tuple[str, ...], what: str, line: int) -> str:
    if isinstance(term, Atom) and term.name in allowed:
        return term.name
    raise AclError(f"line {line}: {what} must be one of {', '.join(allowed)}")


def _who(term: object, line: int) -> tuple[str, str | None]:
    if isinstance(term, Atom) and term.name == "all":
        return ("all", None)
    if isinstance(term, tuple) and len(term) == 2 and isinstance(term[1], Str):
        kind = _atom(term[0], ("username", "clientid"), "who", line)
        return (kind, term[1].value)
    raise AclError(f'line {line}: who must be all, {{username, "..."}} or {{clientid, "..."}}')


def _topic(term: object, line: int) -> tuple[bool, str]:
    if isinstance(term, Str):
        is_eq, value = False, term.value
    elif isinstance(term, tuple) and len(term) == 2 and isinstance(term[1], Str):
        _atom(term[0], ("eq",), "topic qualifier", line)
        is_eq, value = True, term[1].value
    else:
        raise AclError(f'line {line}: a topic must be "filter" or {{eq, "filter"}}')
    problem = validate_filter(value)
    if problem:
        raise AclError(f"line {line}: {problem}: {value!r}")
    return (is_eq, value)


def parse(text: str) -> list[Rule]:
    """The rules of an acl.conf text, in order; AclError for anything outside the subset."""
    parser = _Parser(_tokens(text))
    rules: list[Rule] = []
    while parser.peek() is not None:
        line = parser.line()
        term = parser.term()
        parser.take(".")
        if not isinstance(term, tuple) or len(term) not in (2, 4):
            raise AclError(f"line {line}: a rule is {{Permission, Who, Action, Topics}} or {{Permission, all}}")
        permission = _atom(term[0], ("allow", "deny"), "permission", line)
        if len(term) == 2:
            _atom(term[1], ("all",), "who", line)
            rules.append(Rule(permission, ("all", None), "all", None))
            continue
        who = _who(term[1], line)
        action = _atom(term[2], ("publish", "subscribe", "all"), "action", line)
        if not isinstance(term[3], list):
            raise AclError(f"line {line}: topics must be a list [...]")
        topics = tuple(_topic(t, line) for t in term[3])
        rules.append(Rule(permission, who, action, topics))
    return rules
