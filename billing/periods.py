"""Hour and month arithmetic for metering, invoicing and budgets: pure functions of aware UTC datetimes and dates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

HOUR = timedelta(hours=1)


def hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def month_start_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def month_after(day: date) -> date:
    """The first day of the month after ``day``'s."""
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def month_start_before(day: date) -> date:
    """The first day of the month before ``day``'s."""
    return date(day.year - (day.month == 1), (day.month - 2) % 12 + 1, 1)


def month_start_after(start: datetime) -> datetime:
    """``start`` (the start of a month) one month later."""
    return start.replace(year=start.year + (start.month == 12), month=start.month % 12 + 1)


def as_utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def one_year_later(moment: datetime) -> datetime:
    try:
        return moment.replace(year=moment.year + 1)
    except ValueError:  # 29 February: the term ends on 28 February
        return moment.replace(year=moment.year + 1, day=28)
