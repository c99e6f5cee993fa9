"""Property tests for small pure helpers: prefixed ids and problem-detail flattening."""

from __future__ import annotations

import re
import secrets
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.api.problems import _flatten, problem
from controlplane.ids import new_id
from projects.api.base import OrganizationScopedViewSet

prefixes = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=3, max_size=3)


@given(prefixes)
def test_ids_are_prefixed_and_url_safe(prefix):
    value = new_id(prefix)
    assert value.startswith(prefix + "_")
    assert len(value) <= 32
    assert re.fullmatch(OrganizationScopedViewSet.lookup_value_regex, value)


@settings(max_examples=50)
@given(prefixes)
def test_ids_do_not_repeat(prefix):
    assert len({new_id(prefix) for _ in range(200)}) == 200


def test_ids_use_every_character_in_every_position(monkeypatch):
    samples = [new_id("mqu")[4:] for _ in range(10_000)]
    assert {len(sample) for sample in samples} == {20}
    for position in range(20):
        assert {sample[position] for sample in samples} == set(string.ascii_lowercase + string.digits)
    monkeypatch.setattr(secrets, "randbelow", lambda space: 0)
    assert new_id("mqu") == "mqu_" + "a" * 20
    monkeypatch.setattr(secrets, "randbelow", lambda space: space - 1)
    assert new_id("mqu") == "mqu_" + "9" * 20


messages = st.text(min_size=1, max_size=20)
keys = st.text(alphabet="abcdefghij_", min_size=1, max_size=8)
details = st.recursive(
    st.lists(messages, min_size=1, max_size=3) | messages,
    lambda children: st.dictionaries(keys, children, min_size=1, max_size=3)
    | st.lists(st.dictionaries(keys, children, min_size=1, max_size=2), min_size=1, max_size=3),
    max_leaves=12,
)


def _leaves(detail) -> list[str]:
    if isinstance(detail, dict):
        return [m for value in detail.values() for m in _leaves(value)]
    if isinstance(detail, list):
        return [m for value in detail for m in _leaves(value)]
    return [str(detail)]


@given(details)
def test_flatten_keeps_every_message_under_string_keys(detail):
    flat = _flatten(detail)
    assert all(isinstance(key, str) and key for key in flat)
    assert all(isinstance(msgs, list) and all(isinstance(m, str) for m in msgs) for msgs in flat.values())
    assert sorted(m for msgs in flat.values() for m in msgs) == sorted(_leaves(detail))


def test_flatten_names_nested_fields_with_dots():
    flat = _flatten({"config": {"recipients": {"0": ["Not an email."]}}, "name": ["Required."]})
    assert flat == {"config.recipients.0": ["Not an email."], "name": ["Required."]}
    assert _flatten([{"a": ["x"]}, {"a": ["y"]}]) == {"0.a": ["x"], "1.a": ["y"]}


@given(st.integers(400, 599), messages, messages)
def test_problem_body_shape(status, title, detail):
    body = problem(status, title, detail, "slug")
    assert body == {"type": "https://mqcloud.dev/problems/slug", "title": title, "status": status, "detail": detail}
