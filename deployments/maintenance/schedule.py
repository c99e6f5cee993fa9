"""The occurrences of a weekly maintenance window: pure functions of a rule, a moment and the exclusions, with no
database and no clock, so the calendar rules are tested exhaustively (``tests/test_maintenance_schedule.py``).

A window is a local wall time in an IANA time zone, so it follows daylight saving time: "Sunday 03:00
Europe/Berlin" starts at 03:00 in Berlin in winter and in summer. Two days a year the wall time is ambiguous:
- a start inside the hour skipped in spring (02:30 on the last Sunday of March in Berlin) does not exist; the
  window starts as late as the clock jumped (03:30 CEST, which is 01:30 UTC as 02:30 CET would have been);
- a start inside the hour repeated in autumn happens twice; the window takes the first (``fold=0``).
The length is elapsed time: a 120-minute window is 120 minutes long even across a clock change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

UTC = dt.UTC

#: How far ahead the search goes before giving up (exclusions could, in principle, cover every week).
HORIZON_DAYS = 3 * 366


@dataclass(frozen=True)
class WindowRule:
    """Every ``weekday`` (0 Monday … 6 Sunday) at ``start`` local time in ``time_zone``, for ``length_minutes``."""

    weekday: int
    start: dt.time
    length_minutes: int
    time_zone: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def length(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.length_minutes)


@dataclass(frozen=True)
class DateRange:
    """Whole local days ``first`` to ``last`` (both included), in the window's time zone: a freeze."""

    first: dt.date
    last: dt.date

    def bounds(self, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
        """The range as UTC instants ``[start, end)``: local midnight of ``first`` to local midnight after ``last``."""
        start = dt.datetime.combine(self.first, dt.time(), tzinfo=zone)
        end = dt.datetime.combine(self.last + dt.timedelta(days=1), dt.time(), tzinfo=zone)
        return start.astimezone(UTC), end.astimezone(UTC)


@dataclass(frozen=True)
class Occurrence:
    """One window, ``[start, end)`` as UTC instants."""

    start: dt.datetime
    end: dt.datetime

    def local(self, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
        return self.start.astimezone(zone), self.end.astimezone(zone)

    def overlaps(self, start: dt.datetime, end: dt.datetime) -> bool:
        return self.start < end and start < self.end


def occurrence_on(rule: WindowRule, day: dt.date) -> Occurrence:
    """The window starting on local date ``day`` (which the caller has checked is the rule's weekday)."""
    # fold=0: the first of a repeated wall time; for a skipped one, the offset before the jump, which lands the
    # instant as far past the jump as the wall time was past its start (02:30 -> 03:30 CEST).
    local_start = dt.datetime.combine(day, rule.start, tzinfo=rule.zone)
    start = local_start.astimezone(UTC)
    return Occurrence(start=start, end=start + rule.length)


def _candidates(rule: WindowRule, after: dt.datetime) -> Iterator[Occurrence]:
    """Every occurrence starting at or after ``after``, in order, up to ``HORIZON_DAYS`` ahead."""
    # Start a day early: the local date at ``after`` may already be a day past a window that starts later in UTC.
    day = after.astimezone(rule.zone).date() - dt.timedelta(days=1)
    day += dt.timedelta(days=(rule.weekday - day.weekday()) % 7)
    last = day + dt.timedelta(days=HORIZON_DAYS)
    while day <= last:
        occurrence = occurrence_on(rule, day)
        if occurrence.start >= after:
            yield occurrence
        day += dt.timedelta(weeks=1)


def next_occurrences(rule: WindowRule, *, after: dt.datetime, count: int,
                     exclusions: Iterable[DateRange] = (), skipped_start: dt.datetime | None = None,
                     ) -> list[Occurrence]:
    """The next ``count`` occurrences starting at or after ``after`` (an aware datetime), in order, leaving out
    every occurrence that overlaps an exclusion and the one starting at ``skipped_start`` (a deferred one).
    Fewer than ``count`` only when exclusions cover the whole horizon."""
    if after.tzinfo is None:
        raise ValueError("after must be an aware datetime")
    zone = rule.zone
    blocked = [excluded.bounds(zone) for excluded in exclusions]
    found: list[Occurrence] = []
    for occurrence in _candidates(rule, after.astimezone(UTC)):
        if len(found) >= count:
            break
        if skipped_start is not None and occurrence.start == skipped_start:
            continue
        if any(occurrence.overlaps(start, end) for start, end in blocked):
            continue
        found.append(occurrence)
    return found
