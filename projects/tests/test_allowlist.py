"""Issue 17, item 4: the allowlist's parsing and matching, IPv4 and IPv6 (no database)."""

from __future__ import annotations

import pytest

from projects.allowlist import MAX_ENTRIES, AllowlistError, allowlist_normalize, allowlist_permits


def test_entries_are_normalized_deduplicated_and_kept_in_order():
    assert allowlist_normalize([" 203.0.113.0/24", "2001:0DB8::/32", "198.51.100.7", "203.0.113.0/24", "",
                                "2001:db8:0:0::/32", "::1"]) == [
        "203.0.113.0/24", "2001:db8::/32", "198.51.100.7/32", "::1/128"]


def test_every_bad_entry_is_named_with_the_fix_when_there_is_one():
    with pytest.raises(AllowlistError) as caught:
        allowlist_normalize(["10.0.0.0/8", "10.1.2.3/16", "not-an-address", "300.1.1.1/32", "2001:db8::1/32"])
    assert caught.value.messages == [
        "10.1.2.3/16 has host bits set; the network is 10.1.0.0/16.",
        "'not-an-address' is not an IPv4 or IPv6 network in CIDR notation (such as 203.0.113.0/24).",
        "'300.1.1.1/32' is not an IPv4 or IPv6 network in CIDR notation (such as 203.0.113.0/24).",
        "2001:db8::1/32 has host bits set; the network is 2001:db8::/32.",
    ]


def test_the_list_has_a_ceiling():
    with pytest.raises(AllowlistError, match=f"At most {MAX_ENTRIES}"):
        allowlist_normalize([f"10.0.{i // 256}.{i % 256}" for i in range(MAX_ENTRIES + 1)])


@pytest.mark.parametrize(("address", "allowed"), [
    ("203.0.113.77", True),
    ("203.0.114.1", False),
    ("2001:db8:42::1", True),
    ("2001:db9::1", False),
    ("::ffff:203.0.113.9", True),  # an IPv4 client seen through a dual-stack socket
    ("::ffff:192.0.2.1", False),
    ("garbage", False),
    (None, False),
])
def test_an_address_passes_only_inside_a_listed_network(address, allowed):
    assert allowlist_permits(["203.0.113.0/24", "2001:db8::/32"], address) is allowed


def test_an_empty_list_lets_everyone_in_even_an_unknown_address():
    assert allowlist_permits([], "192.0.2.1") and allowlist_permits([], None)
