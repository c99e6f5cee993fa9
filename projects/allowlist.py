"""An organization's IP allowlist: parsing what people type, and matching a client address against it.

The list holds networks in CIDR notation, IPv4 and IPv6 side by side; a bare address means that one address
(``/32`` or ``/128``). An empty list restricts nothing. Stored normalized (``2001:db8::/32``, never
``2001:0DB8::/32``), without duplicates, in the order given.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from functools import lru_cache

#: Enough for offices, VPNs and CI runners; a longer list is a sign of something an allowlist does not do well.
MAX_ENTRIES = 100

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AllowlistError(ValueError):
    """One or more entries are not networks; ``messages`` says which and why, one line each."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


def allowlist_normalize(entries: Iterable[str]) -> list[str]:
    """The entries as stored, or :class:`AllowlistError` naming every entry that is not a network."""
    normalized: list[str] = []
    problems: list[str] = []
    for raw in entries:
        entry = str(raw).strip()
        if not entry:
            continue
        try:
            network = ipaddress.ip_network(entry, strict=True)
        except ValueError:
            problems.append(_explain(entry))
            continue
        if str(network) not in normalized:
            normalized.append(str(network))
    if len(normalized) > MAX_ENTRIES:
        problems.append(f"At most {MAX_ENTRIES} networks; merge neighbouring ones into wider prefixes.")
    if problems:
        raise AllowlistError(problems)
    return normalized


def _explain(entry: str) -> str:
    """Why ``entry`` is refused, with the fix when there is an obvious one (host bits set)."""
    try:
        network = ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return f"{entry[:60]!r} is not an IPv4 or IPv6 network in CIDR notation (such as 203.0.113.0/24)."
    return f"{entry} has host bits set; the network is {network}."


def allowlist_permits(allowlist: Sequence[str], address: str | None) -> bool:
    """Whether a request from ``address`` may pass; an empty list lets everyone through, an unknown address
    nobody when there is a list."""
    if not allowlist:
        return True
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    # A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; people list them as IPv4.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in _networks(tuple(allowlist)))


@lru_cache(maxsize=256)
def _networks(allowlist: tuple[str, ...]) -> tuple[Network, ...]:
    # Parsed once per distinct list: this runs on every request of an organization that has one.
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in allowlist)
