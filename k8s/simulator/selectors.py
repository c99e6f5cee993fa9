"""Label and field selectors, in the query-string syntax (`a=b,c!=d,e in (x,y),!f`) and as the
`LabelSelector` objects StatefulSets and PodDisruptionBudgets carry."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import bad_request

_SET_RE = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ_RE = re.compile(r"^\s*([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)\s*([\w./-]+)\s*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: dict[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op == "in":
            return labels.get(self.key) in self.values
        # `notin` (and `!=`) also match objects without the label, as on a real server.
        return labels.get(self.key) not in self.values


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses: `a in (x,y),b` is two requirements, not three."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p for p in parts if p.strip()]


def parse_label_selector(text: str | None) -> list[Requirement]:
    reqs = []
    for part in _split_top_level(text or ""):
        if m := _SET_RE.match(part):
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            reqs.append(Requirement(m.group(1), m.group(2), values))
        elif m := _EQ_RE.match(part):
            reqs.append(Requirement(m.group(1), "notin" if m.group(2) == "!=" else "in", frozenset({m.group(3)})))
        elif m := _EXISTS_RE.match(part):
            reqs.append(Requirement(m.group(2), "!exists" if m.group(1) else "exists"))
        else:
            raise bad_request(f"unable to parse requirement: {part.strip()!r}")
    return reqs


def from_label_selector(selector: dict[str, Any] | None) -> list[Requirement]:
    selector = selector or {}
    reqs = [Requirement(k, "in", frozenset({str(v)})) for k, v in (selector.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    for expr in selector.get("matchExpressions") or []:
        reqs.append(Requirement(expr["key"], ops[expr["operator"]], frozenset(expr.get("values") or [])))
    return reqs


def selector_string(selector: dict[str, Any] | None) -> str:
    """The `status.selector` string a Scale subresource reports."""
    return ",".join(f"{k}={v}" for k, v in sorted(((selector or {}).get("matchLabels") or {}).items()))


def labels_match(reqs: list[Requirement], labels: dict[str, str] | None) -> bool:
    return all(r.matches(labels or {}) for r in reqs)


def parse_field_selector(text: str | None) -> list[tuple[str, bool, str]]:
    """`metadata.name=x,status.phase!=Running` → [(path, wanted_equal, value)]."""
    out = []
    for part in _split_top_level(text or ""):
        m = _EQ_RE.match(part)
        if not m:
            raise bad_request(f"invalid field selector: {part.strip()!r}")
        out.append((m.group(1), m.group(2) != "!=", m.group(3)))
    return out


def fields_match(reqs: list[tuple[str, bool, str]], obj: dict[str, Any]) -> bool:
    for path, equal, value in reqs:
        current: Any = obj
        for part in path.split("."):
            current = current.get(part) if isinstance(current, dict) else None
        if (str(current if current is not None else "") == value) != equal:
            return False
    return True
