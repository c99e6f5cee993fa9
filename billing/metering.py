"""Pure metering: billable seconds per spec inside a window, from a deployment's lifecycle events."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from deployments.lifecycle import BILLABLE


@dataclass(frozen=True)
class Transition:
    at: datetime
    to_status: str
    spec_id: str


def billable_seconds(events: Iterable[Transition], *, start: datetime, end: datetime,
                     annual_terms: Sequence[tuple[datetime, datetime]] = ()) -> dict[str, int]:
    """Seconds in billable states between ``start`` and ``end`` per spec in force.

    ``events`` are every transition up to ``end`` (the last one before ``start`` gives the state at
    ``start``). Time inside ``annual_terms`` (prepaid, ``[start, end)``) is not metered hourly: the price
    changes at the second of the switch and again when a term ends without renewal.
    Sub-second parts are truncated per interval boundary, never carried over.
    """
    annual_terms = _merged(annual_terms)
    result: dict[str, int] = {}
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


def _add(result: dict[str, int], state: Transition | None, since: datetime, until: datetime,
         annual_terms: Sequence[tuple[datetime, datetime]]) -> None:
    if state is None or state.to_status not in BILLABLE or until <= since:
        return
    seconds = int((until - since).total_seconds())
    for term_start, term_end in annual_terms:
        overlap_start, overlap_end = max(since, term_start), min(until, term_end)
        if overlap_end > overlap_start:
            seconds -= int((overlap_end - overlap_start).total_seconds())
    if seconds > 0:
        result[state.spec_id] = result.get(state.spec_id, 0) + seconds


def _merged(intervals: Sequence[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for begin, finish in sorted(intervals):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], finish))
        else:
            merged.append((begin, finish))
    return merged
