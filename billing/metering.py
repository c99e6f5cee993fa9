"""Pure metering: metered seconds per spec and rate inside a window, from a deployment's lifecycle events.

Two rates: ``running`` (the hourly price, states in ``BILLABLE``) and ``stopped`` (the spec's small storage
price, states in ``STORAGE_BILLABLE``). Every other state (pending, stopping, starting, failed, ...) is free.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from deployments.facade import BILLABLE, STORAGE_BILLABLE

RUNNING = "running"
STOPPED = "stopped"
#: The rate each metered state is charged at.
RATE_OF_STATUS: dict[str, str] = {status: RUNNING for status in BILLABLE} | {
    status: STOPPED for status in STORAGE_BILLABLE}


@dataclass(frozen=True)
class Transition:
    at: datetime
    to_status: str
    spec_id: str


def metered_seconds(events: Iterable[Transition], *, start: datetime, end: datetime,
                    annual_terms: Sequence[tuple[datetime, datetime]] = ()) -> dict[tuple[str, str], int]:
    """Seconds between ``start`` and ``end`` per (spec in force, rate) with rate ``running`` or ``stopped``.

    ``events`` are every transition up to ``end`` (the last one before ``start`` gives the state at
    ``start``). Time inside ``annual_terms`` (prepaid, ``[start, end)``) is not metered at either rate: the
    price changes at the second of the switch and again when a term ends without renewal.
    Sub-second parts are truncated per interval boundary, never carried over.
    """
    annual_terms = _merged(annual_terms)
    result: dict[tuple[str, str], int] = {}
    state: Transition | None = None
    cursor = start
    for event in sorted(events, key=lambda e: e.at):
        if event.at >= end:
            break
        if event.at <= start:
            state = event
            continue
        _add(result, state, cursor, event.at, annual_terms)
        state, cursor = event, event.at
    _add(result, state, cursor, end, annual_terms)
    return result


def billable_seconds(events: Iterable[Transition], *, start: datetime, end: datetime,
                     annual_terms: Sequence[tuple[datetime, datetime]] = ()) -> dict[str, int]:
    """Seconds at the running (hourly) rate per spec: :func:`metered_seconds` without the stopped rate."""
    seconds = metered_seconds(events, start=start, end=end, annual_terms=annual_terms)
    return {spec_id: secs for (spec_id, rate), secs in seconds.items() if rate == RUNNING}


def _add(result: dict[tuple[str, str], int], state: Transition | None, since: datetime, until: datetime,
         annual_terms: Sequence[tuple[datetime, datetime]]) -> None:
    rate = RATE_OF_STATUS.get(state.to_status) if state is not None else None
    if state is None or rate is None or until <= since:
        return
    seconds = int((until - since).total_seconds())
    for term_start, term_end in annual_terms:
        overlap_start, overlap_end = max(since, term_start), min(until, term_end)
        if overlap_end > overlap_start:
            seconds -= int((overlap_end - overlap_start).total_seconds())
    if seconds > 0:
        key = (state.spec_id, rate)
        result[key] = result.get(key, 0) + seconds


def _merged(intervals: Sequence[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for begin, finish in sorted(intervals):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], finish))
        else:
            merged.append((begin, finish))
    return merged
