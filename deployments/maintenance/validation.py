"""The values of a maintenance window and of an exclusion, checked together so one 400 names every bad field."""

from __future__ import annotations

import datetime as dt
import functools
import re
import zoneinfo
from dataclasses import dataclass

from controlplane import errors
from deployments.models import Weekday

#: The longest window: a day (a window of its length never overlaps the next week's).
LENGTH_MAX_MINUTES = 24 * 60
#: The longest exclusion: a freeze longer than this would starve the deployment of patches.
EXCLUSION_MAX_DAYS = 60
REASON_MAX = 200
WEEKDAYS = {label.lower(): value for value, label in Weekday.choices}
_HH_MM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


@dataclass(frozen=True)
class WindowValues:
    weekday: int
    start_time: dt.time
    length_minutes: int
    time_zone: str


@functools.cache
def _known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _invalid(problems: dict[str, list[str]]) -> errors.ValidationFailed:
    return errors.ValidationFailed("The request has invalid fields.", errors=problems)


def window_clean(*, weekday: object, start_time: object, length_minutes: object,
                 time_zone: object) -> WindowValues:
    problems: dict[str, list[str]] = {}
    day = WEEKDAYS.get(weekday.lower()) if isinstance(weekday, str) else None
    if day is None:
        problems["weekday"] = [f"One of {', '.join(WEEKDAYS)}."]
    match = _HH_MM.fullmatch(start_time) if isinstance(start_time, str) else None
    if match is None:
        problems["start_time"] = ["A local time as HH:MM (24-hour), e.g. 03:00."]
    # bool is an int to Python, never a length to a person.
    length = length_minutes if isinstance(length_minutes, int) and not isinstance(length_minutes, bool) else 0
    if not 1 <= length <= LENGTH_MAX_MINUTES:
        problems["length_minutes"] = [f"Whole minutes from 1 to {LENGTH_MAX_MINUTES} (24 hours)."]
    if not isinstance(time_zone, str) or time_zone not in _known_zones():
        problems["time_zone"] = ["An IANA time zone name, e.g. Europe/Berlin."]
    if problems:
        raise _invalid(problems)
    assert match is not None and day is not None  # for the type checker: both were checked above
    return WindowValues(weekday=day, start_time=dt.time(int(match[1]), int(match[2])), length_minutes=length,
                        time_zone=str(time_zone))


def exclusion_clean(*, start_date: dt.date, end_date: dt.date, reason: str,
                    existing: list[tuple[dt.date, dt.date]]) -> None:
    """``existing``: the other exclusions of the same project or deployment, which this one may not overlap."""
    problems: dict[str, list[str]] = {}
    if end_date < start_date:
        problems["end_date"] = ["Must not be before start_date."]
    elif (end_date - start_date).days + 1 > EXCLUSION_MAX_DAYS:
        problems["end_date"] = [f"An exclusion lasts at most {EXCLUSION_MAX_DAYS} days."]
    elif any(start_date <= last and first <= end_date for first, last in existing):
        problems["start_date"] = ["Overlaps another exclusion; change or delete that one instead."]
    if len(reason) > REASON_MAX:
        problems["reason"] = [f"At most {REASON_MAX} characters."]
    if problems:
        raise _invalid(problems)
