"""SCIM filters (RFC 7644 §3.4.2.2): parsed once into a small tree, then either turned into a Django ``Q``
(the ``filter=`` of a list) or evaluated on a resource's JSON (the ``path`` of a PATCH operation such as
``members[value eq "scu_…"]``).

Supported: ``eq ne co sw ew gt ge lt le pr``, ``and``, ``or``, ``not (…)`` and parentheses; attribute names
are case-insensitive, string comparisons are not case-exact (every attribute we publish is ``caseExact``
false). Anything else is a :class:`ScimError` ``invalidFilter`` (400).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.db.models import Q

from projects.scim.errors import ScimError

_TOKEN_RE = re.compile(
    r"""\s*(?:
        (?P<lparen>\() | (?P<rparen>\)) | (?P<lbracket>\[) | (?P<rbracket>\]) |
        (?P<string>"(?:[^"\\]|\\.)*") |
        (?P<word>[A-Za-z0-9_:.$\-+]+)
    )""",
    re.VERBOSE,
)
COMPARE_OPS = {"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"}


@dataclass(frozen=True)
class Compare:
    attr: str  # lower-cased, dotted ("emails.value")
    op: str  # one of COMPARE_OPS, or "pr"
    value: Any = None


@dataclass(frozen=True)
class Logical:
    op: str  # "and" | "or"
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    inner: Node


Node = Compare | Logical | Not


def _invalid(detail: str) -> ScimError:
    return ScimError(400, detail, scim_type="invalidFilter")


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None or match.end() == pos:
            raise _invalid(f"Cannot read the filter at {text[pos:pos + 20]!r}.")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise _invalid("The filter ends too early.")
        self.pos += 1
        return token

    def parse(self) -> Node:
        node = self.parse_or()
        if self.peek() is not None:
            raise _invalid(f"Unexpected {self.peek()[1]!r} in the filter.")  # type: ignore[index]
        return node

    def _keyword(self, word: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "word" and token[1].lower() == word

    def parse_or(self) -> Node:
        node = self.parse_and()
        while self._keyword("or"):
            self.take()
            node = Logical("or", node, self.parse_and())
        return node

    def parse_and(self) -> Node:
        node = self.parse_unary()
        while self._keyword("and"):
            self.take()
            node = Logical("and", node, self.parse_unary())
        return node

    def parse_unary(self) -> Node:
        if self._keyword("not"):
            self.take()
            if self.take()[0] != "lparen":
                raise _invalid("'not' must be followed by '('.")
            inner = self.parse_or()
            if self.take()[0] != "rparen":
                raise _invalid("Missing ')'.")
            return Not(inner)
        kind, _ = self.peek() or ("", "")
        if kind == "lparen":
            self.take()
            inner = self.parse_or()
            if self.take()[0] != "rparen":
                raise _invalid("Missing ')'.")
            return inner
        return self.parse_compare()

    def parse_compare(self) -> Node:
        kind, attr = self.take()
        if kind != "word":
            raise _invalid(f"Expected an attribute name, got {attr!r}.")
        attr = _strip_schema(attr).lower()
        if self.peek() is not None and self.peek()[0] == "lbracket":  # type: ignore[index]
            # emails[type eq "work"] as a whole filter: the inner condition on the sub-attributes.
            self.take()
            inner = self.parse_or()
            if self.take()[0] != "rbracket":
                raise _invalid("Missing ']'.")
            return _prefix(inner, attr)
        kind, op = self.take()
        op = op.lower()
        if kind != "word" or (op not in COMPARE_OPS and op != "pr"):
            raise _invalid(f"Unsupported operator {op!r}.")
        if op == "pr":
            return Compare(attr, "pr")
        kind, raw = self.take()
        return Compare(attr, op, _literal(kind, raw))


def _prefix(node: Node, attr: str) -> Node:
    if isinstance(node, Compare):
        return Compare(f"{attr}.{node.attr}", node.op, node.value)
    if isinstance(node, Not):
        return Not(_prefix(node.inner, attr))
    return Logical(node.op, _prefix(node.left, attr), _prefix(node.right, attr))


def _strip_schema(attr: str) -> str:
    # "urn:ietf:params:scim:schemas:core:2.0:User:userName" names the same attribute as "userName".
    if attr.lower().startswith("urn:"):
        return attr.rsplit(":", 1)[-1]
    return attr


def _literal(kind: str, raw: str) -> Any:
    if kind == "string":
        return re.sub(r"\\(.)", r"\1", raw[1:-1])
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    try:
        return int(raw)
    except ValueError:
        try:
            return float(raw)
        except ValueError:
            raise _invalid(f"{raw!r} is not a SCIM value (strings are quoted).") from None


def parse_filter(text: str) -> Node:
    if len(text) > 2000:
        raise _invalid("The filter is too long.")
    return _Parser(text).parse()


# --- to a Django query ------------------------------------------------------------------------------------
_LOOKUPS = {"eq": "iexact", "co": "icontains", "sw": "istartswith", "ew": "iendswith",
            "gt": "gt", "ge": "gte", "lt": "lt", "le": "lte"}


def filter_to_q(node: Node, fields: dict[str, str]) -> Q:
    """``fields`` maps lower-cased SCIM attribute paths to model lookups; an attribute not in it is refused."""
    if isinstance(node, Logical):
        left, right = filter_to_q(node.left, fields), filter_to_q(node.right, fields)
        return left & right if node.op == "and" else left | right
    if isinstance(node, Not):
        return ~filter_to_q(node.inner, fields)
    field = fields.get(node.attr)
    if field is None:
        raise _invalid(f"Filtering on {node.attr!r} is not supported.")
    if node.op == "pr":
        return Q(**{f"{field}__isnull": False}) & ~Q(**{field: ""})
    if isinstance(node.value, bool) or node.value is None:
        if node.op not in ("eq", "ne"):
            raise _invalid(f"{node.op!r} needs a string or a number.")
        q = Q(**{f"{field}__isnull": True}) if node.value is None else Q(**{field: node.value})
    elif node.op == "ne":
        q = Q(**{f"{field}__iexact": node.value})
    else:
        q = Q(**{f"{field}__{_LOOKUPS[node.op]}": node.value})
    return ~q if node.op == "ne" else q


# --- on a resource's JSON ---------------------------------------------------------------------------------
def _values(resource: Any, path: str) -> list[Any]:
    current = [resource]
    for part in path.split("."):
        found: list[Any] = []
        for item in current:
            if isinstance(item, list):
                item_list = item
            else:
                item_list = [item]
            for element in item_list:
                if isinstance(element, dict):
                    for key, value in element.items():
                        if key.lower() == part:
                            found.extend(value if isinstance(value, list) else [value])
        current = found
    return current


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if isinstance(actual, str) and isinstance(expected, str):
        actual, expected = actual.lower(), expected.lower()
    if op == "eq":
        return actual == expected
    if op == "ne":
        return actual != expected
    if not isinstance(actual, str) or not isinstance(expected, str):
        if op in ("co", "sw", "ew"):
            return False
    try:
        return {
            "co": lambda: expected in actual,
            "sw": lambda: actual.startswith(expected),
            "ew": lambda: actual.endswith(expected),
            "gt": lambda: actual > expected,
            "ge": lambda: actual >= expected,
            "lt": lambda: actual < expected,
            "le": lambda: actual <= expected,
        }[op]()
    except TypeError:
        return False


def filter_matches(node: Node, resource: dict) -> bool:
    if isinstance(node, Logical):
        if node.op == "and":
            return filter_matches(node.left, resource) and filter_matches(node.right, resource)
        return filter_matches(node.left, resource) or filter_matches(node.right, resource)
    if isinstance(node, Not):
        return not filter_matches(node.inner, resource)
    values = _values(resource, node.attr)
    if node.op == "pr":
        return any(value not in (None, "", [], {}) for value in values)
    if node.op == "ne":
        return all(_compare(value, "ne", node.value) for value in values)
    return any(_compare(value, node.op, node.value) for value in values)
