"""What every explicit state machine here (deployments, peerings) checks before a transition."""

from __future__ import annotations

from collections.abc import Mapping

from django.db import transaction

from controlplane import errors


def require_transition(transitions: Mapping[str, frozenset[str]], *, kind: str, from_status: str,
                       to_status: str) -> None:
    """Raises unless the move is in the table and runs where the caller can hold the row lock."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError(f"a {kind} transition must run inside transaction.atomic with the row locked")
    if to_status not in transitions.get(from_status, frozenset()):
        raise errors.Conflict(f"A {kind} cannot go from {from_status} to {to_status}.")
