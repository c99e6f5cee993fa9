"""The window calendar: daylight saving time both ways, exclusions, defer once, and properties over any rule."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deployments.maintenance.schedule import DateRange, WindowRule, next_occurrences

BERLIN = ZoneInfo("Europe/Berlin")
SUNDAY = 6


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def test_keeps_the_local_start_time_across_the_spring_change():
    rule = WindowRule(SUNDAY, dt.time(4, 0), 60, "Europe/Berlin")
    found = next_occurrences(rule, after=utc(2026, 3, 20), count=2)
    # 22 March is CET (UTC+1), 29 March (the last Sunday) CEST (UTC+2): the same 04:00 in Berlin.
    assert [o.start for o in found] == [utc(2026, 3, 22, 3), utc(2026, 3, 29, 2)]
    assert {o.start.astimezone(BERLIN).time() for o in found} == {dt.time(4, 0)}


def test_keeps_the_local_start_time_across_the_autumn_change():
    rule = WindowRule(SUNDAY, dt.time(4, 0), 60, "Europe/Berlin")
    found = next_occurrences(rule, after=utc(2026, 10, 20), count=2)
    assert [o.start for o in found] == [utc(2026, 10, 25, 3), utc(2026, 11, 1, 3)]
    assert [o.start - o.end for o in found] == [dt.timedelta(minutes=-60)] * 2


def test_a_start_inside_the_skipped_hour_moves_forward():
    rule = WindowRule(SUNDAY, dt.time(2, 30), 60, "Europe/Berlin")
    spring = next_occurrences(rule, after=utc(2026, 3, 28), count=1)[0]
    assert spring.start == utc(2026, 3, 29, 1, 30)
    assert spring.start.astimezone(BERLIN).time() == dt.time(3, 30)


def test_a_start_inside_the_repeated_hour_takes_the_first():
    rule = WindowRule(SUNDAY, dt.time(2, 30), 90, "Europe/Berlin")
    autumn = next_occurrences(rule, after=utc(2026, 10, 24), count=1)[0]
    assert autumn.start == utc(2026, 10, 25, 0, 30)  # 02:30 CEST, not 02:30 CET an hour later
    assert autumn.end - autumn.start == dt.timedelta(minutes=90)  # elapsed time, across the change


def test_starts_at_or_after_the_moment():
    rule = WindowRule(SUNDAY, dt.time(4, 0), 60, "Europe/Berlin")
    assert next_occurrences(rule, after=utc(2026, 3, 22, 3), count=1)[0].start == utc(2026, 3, 22, 3)
    assert next_occurrences(rule, after=utc(2026, 3, 22, 3, 0, 1), count=1)[0].start == utc(2026, 3, 29, 2)


def test_a_window_on_the_next_local_day_seen_from_utc():
    # Monday 00:30 in Tokyo is Sunday 15:30 UTC: found from a Sunday morning UTC.
    rule = WindowRule(0, dt.time(0, 30), 30, "Asia/Tokyo")
    assert next_occurrences(rule, after=utc(2026, 12, 6, 9), count=1)[0].start == utc(2026, 12, 6, 15, 30)


def test_exclusions_skip_the_occurrences_they_overlap():
    rule = WindowRule(SUNDAY, dt.time(23, 0), 120, "Europe/Berlin")  # runs into Monday
    freeze = DateRange(dt.date(2026, 12, 14), dt.date(2026, 12, 20))
    found = next_occurrences(rule, after=utc(2026, 12, 1), count=3, exclusions=[freeze])
    # 13 Dec 23:00-01:00 reaches into the freeze's first day; 20 Dec starts inside it.
    assert [o.start.astimezone(BERLIN).date() for o in found] == [
        dt.date(2026, 12, 6), dt.date(2026, 12, 27), dt.date(2027, 1, 3)]


def test_defer_once_skips_exactly_the_deferred_occurrence():
    rule = WindowRule(SUNDAY, dt.time(4, 0), 60, "Europe/Berlin")
    plain = next_occurrences(rule, after=utc(2026, 12, 1), count=4)
    deferred = next_occurrences(rule, after=utc(2026, 12, 1), count=3, skipped_start=plain[0].start)
    assert deferred == plain[1:]


def test_refuses_a_naive_moment():
    with pytest.raises(ValueError):
        next_occurrences(WindowRule(0, dt.time(0, 0), 30, "UTC"), after=dt.datetime(2026, 1, 1),  # noqa: DTZ001
                         count=1)


ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "America/Santiago", "UTC"]
rules = st.builds(
    WindowRule, weekday=st.integers(0, 6), start=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
    length_minutes=st.integers(1, 24 * 60), time_zone=st.sampled_from(ZONES))
# Hypothesis takes naive bounds and attaches ``timezones`` to what it draws.
moments = st.datetimes(min_value=dt.datetime(2024, 1, 1), max_value=dt.datetime(2030, 12, 31),  # noqa: DTZ001
                       timezones=st.just(dt.UTC))
ranges = st.tuples(st.dates(dt.date(2024, 1, 1), dt.date(2031, 6, 30)), st.integers(0, 59)).map(
    lambda pair: DateRange(pair[0], pair[0] + dt.timedelta(days=pair[1])))


@settings(max_examples=150, deadline=None)
@given(rule=rules, after=moments, exclusions=st.lists(ranges, max_size=4))
def test_properties(rule, after, exclusions):
    found = next_occurrences(rule, after=after, count=5, exclusions=exclusions)
    assert len(found) == 5  # four freezes of at most 60 days never cover three years
    zone = ZoneInfo(rule.time_zone)
    for earlier, later in zip(found, found[1:], strict=False):
        assert earlier.end <= later.start  # ordered, and a window never overlaps the next (length <= 24 h)
    for occurrence in found:
        assert occurrence.start >= after
        assert occurrence.end - occurrence.start == dt.timedelta(minutes=rule.length_minutes)
        assert not any(occurrence.overlaps(*excluded.bounds(zone)) for excluded in exclusions)
        local = occurrence.start.astimezone(zone)
        wall = dt.datetime.combine(local.date(), rule.start, tzinfo=zone)
        if wall.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None) == wall.replace(tzinfo=None):
            assert (local.weekday(), local.time()) == (rule.weekday, rule.start)
        else:  # the configured time does not exist that day: it starts as late after the jump
            assert local.weekday() == rule.weekday and local.time() > rule.start


@settings(max_examples=100, deadline=None)
@given(rule=rules, after=moments)
def test_deferring_skips_exactly_one(rule, after):
    plain = next_occurrences(rule, after=after, count=3)
    assert next_occurrences(rule, after=after, count=2, skipped_start=plain[0].start) == plain[1:]
