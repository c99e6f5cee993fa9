"""Metering: UsageRecords from DeploymentEvents, hour by hour. Reruns are no-ops."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from billing import interval_metering, money, periods
from billing.metering import RATE_OF_STATUS, STOPPED, Transition, metered_seconds
from billing.models import (
    AnnualCharge,
    ChargeKind,
    UsageRecord,
)
from deployments.models import Deployment, DeploymentEvent, SpecPrice
from projects.models import SITE_CURRENCY


# --- metering ---------------------------------------------------------------------------------------
def _price_table() -> dict[tuple[str, str], SpecPrice]:
    return {(p.spec_id, p.currency): p for p in SpecPrice.objects.all()}


#: Hours metered per query and transaction by :func:`usage_meter_range`: bounds memory and lock time, and keeps
#: the rows a statement adds to the indexes on ``hour_start`` within a day. A month in one statement was faster
#: for 2,000 deployments (its indexes fit in memory) but took 262 s instead of 164 s for 10,000.
METER_CHUNK_HOURS = 24


def usage_meter_hour(*, hour_start: datetime) -> int:
    """Meters one closed hour from DeploymentEvents and upserts its UsageRecords; returns how many rows changed.

    Idempotent: an unchanged history writes nothing. Re-running an hour after late events recomputes it
    (changed rows updated, vanished ones deleted). Running (and scaling) seconds are priced at the spec's
    hourly price, stopped seconds at its stopped (storage) price, in separate rows. Metering at both rates
    stops at the second of a switch to annual: the term is prepaid.
    """
    if hour_start.tzinfo is None or hour_start != periods.hour_floor(hour_start):
        raise ValueError("hour_start must be an aware datetime on the hour")
    return usage_meter_range(start=hour_start, end=hour_start + periods.HOUR)


def usage_meter_range(*, start: datetime, end: datetime) -> int:
    """Meters every closed hour in ``[start, end)`` as :func:`usage_meter_hour` does, a day of hours per round
    (a month for 10,000 deployments is 30 statements, not 720); returns how many rows changed."""
    for moment in (start, end):
        if moment.tzinfo is None or moment != periods.hour_floor(moment):
            raise ValueError("start and end must be aware datetimes on the hour")
    changed = 0
    while start < end:
        chunk_end = min(start + periods.HOUR * METER_CHUNK_HOURS, end)
        changed += _meter_chunk(start, chunk_end)
        start = chunk_end
    return changed


def _wanted_rows(start: datetime, end: datetime) -> dict[tuple[str, datetime, str, str], tuple[str, int, str, Decimal]]:
    """The usage rows of ``[start, end)`` computed in Python, hour by hour (SQLite, the embedded default)."""
    hours = [start + periods.HOUR * n for n in range(int((end - start) / periods.HOUR))]
    deployments = list(
        Deployment.objects.filter(created_at__lt=end).exclude(deleted_at__lt=start)
        .annotate(state_event=Subquery(
            DeploymentEvent.objects.filter(deployment=OuterRef("pk"), created_at__lte=start)
            .order_by("-created_at", "-id").values("id")[:1]))
        .values_list("id", "organization_id", "organization__site", "state_event"))
    wanted_ids = {d[0] for d in deployments}
    events: dict[str, list[Transition]] = defaultdict(list)
    rows = (DeploymentEvent.objects.filter(id__in=[d[3] for d in deployments if d[3]])
            | DeploymentEvent.objects.filter(created_at__gt=start, created_at__lt=end))
    for dep_id, at, to_status, spec_id in rows.values_list("deployment_id", "created_at", "to_status", "spec_id"):
        if dep_id in wanted_ids:
            events[dep_id].append(Transition(at, to_status, spec_id))
    annual_terms: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for dep_id, term_start, term_end in AnnualCharge.objects.filter(
            kind=ChargeKind.TERM, term_start__lt=end, term_end__gt=start).values_list(
            "deployment_id", "term_start", "term_end"):
        annual_terms[dep_id].append((term_start, term_end))
    prices = _price_table()
    # (deployment, hour, spec, rate) -> (organization, seconds, currency, per-hour price of the rate)
    wanted: dict[tuple[str, datetime, str, str], tuple[str, int, str, Decimal]] = {}
    for dep_id, org_id, site, _ in deployments:
        # The column holds a Site's value as a plain str, which is the same key (Site is a str enum).
        currency = SITE_CURRENCY[site]  # type: ignore[index]
        history = sorted(events[dep_id], key=lambda e: e.at)
        terms = annual_terms[dep_id]
        state: Transition | None = None
        steady: tuple[str, str, Decimal] | None = None  # (spec, rate, price) of a whole hour in `state`
        steady_of: Transition | None = None
        index = 0
        for hour in hours:
            # The state in force at the hour's start, then the events inside the hour.
            while index < len(history) and history[index].at <= hour:
                state = history[index]
                index += 1
            inside = index
            while inside < len(history) and history[inside].at < hour + periods.HOUR:
                inside += 1
            if state is None and inside == index:
                continue
            if inside == index and not any(a < hour + periods.HOUR and b > hour for a, b in terms):
                # Nothing happens inside the hour and no annual term touches it: the whole hour in one state,
                # which is what metered_seconds returns for it (most hours of a month).
                if steady_of is not state:
                    steady, steady_of = _steady_row(state, currency, prices), state
                if steady is not None:
                    wanted[(dep_id, hour, steady[0], steady[1])] = (org_id, 3600, currency, steady[2])
                continue
            window = ([state] if state is not None else []) + history[index:inside]
            for (spec_id, rate), secs in metered_seconds(window, start=hour, end=hour + periods.HOUR,
                                                         annual_terms=terms).items():
                price = prices[(spec_id, currency)]
                wanted[(dep_id, hour, spec_id, rate)] = (
                    org_id, secs, currency, price.stopped_hourly if rate == STOPPED else price.hourly)
    return wanted


def _meter_chunk(start: datetime, end: datetime) -> int:
    if connection.vendor == "postgresql":
        with transaction.atomic():
            _lock_metering()
            return _usage_sync_postgresql(start, end, None)
    wanted = _wanted_rows(start, end)
    with transaction.atomic():
        _lock_metering()
        existing = {(dep_id, hour, spec_id, rate): (pk, (secs, currency, price))
                    for pk, dep_id, hour, spec_id, rate, secs, currency, price in UsageRecord.objects.filter(
                        hour_start__gte=start, hour_start__lt=end).values_list(
                        "pk", "deployment_id", "hour_start", "spec_id", "rate", "seconds", "currency",
                        "hourly_price")}
        stale = [pk for key, (pk, _) in existing.items() if key not in wanted]
        changed = [(key, row) for key, row in wanted.items()
                   if key not in existing or existing[key][1] != row[1:]]
        if stale:
            UsageRecord.objects.filter(pk__in=stale).delete()
        if changed:
            _usage_upsert(changed)
    return len(stale) + len(changed)


def _steady_row(state: Transition | None, currency: str,
                prices: dict[tuple[str, str], SpecPrice]) -> tuple[str, str, Decimal] | None:
    """(spec, rate, per-hour price of the rate) of a whole hour in ``state``; None when it is free."""
    rate = RATE_OF_STATUS.get(state.to_status) if state is not None else None
    if state is None or rate is None:
        return None
    price = prices[(state.spec_id, currency)]
    return state.spec_id, rate, price.stopped_hourly if rate == STOPPED else price.hourly


_DELETE_VANISHED_SQL = """
    DELETE FROM billing_usagerecord AS u WHERE u.hour_start >= %s AND u.hour_start < %s
    AND (%s::text[] IS NULL OR u.deployment_id = ANY(%s::text[]))
    AND NOT EXISTS (SELECT FROM billing_usage_new AS n WHERE n.deployment_id = u.deployment_id
                    AND n.hour_start = u.hour_start AND n.spec_id = u.spec_id AND n.rate = u.rate)
"""
# Under the metering lock nothing else writes usage rows, so changed rows are updated and new ones inserted
# plainly: an INSERT ... ON CONFLICT DO UPDATE inserts each row speculatively and took 2.5 times as long as a
# plain INSERT for a month's 1.3 million new rows; only rows that differ are touched, so a rerun writes nothing.
_UPDATE_CHANGED_SQL = """
    UPDATE billing_usagerecord AS u SET seconds = n.seconds, currency = n.currency, hourly_price = n.hourly_price,
        metered_at = %s
    FROM billing_usage_new AS n WHERE n.deployment_id = u.deployment_id AND n.hour_start = u.hour_start
        AND n.spec_id = u.spec_id AND n.rate = u.rate AND u.hour_start >= %s AND u.hour_start < %s
        AND (u.seconds, u.currency, u.hourly_price) IS DISTINCT FROM (n.seconds, n.currency, n.hourly_price)
"""
_INSERT_NEW_SQL = """
    INSERT INTO billing_usagerecord (deployment_id, hour_start, spec_id, rate, organization_id, seconds, currency,
                                     hourly_price, metered_at)
    SELECT n.*, %s FROM billing_usage_new AS n
    WHERE NOT EXISTS (SELECT FROM billing_usagerecord AS u WHERE n.deployment_id = u.deployment_id
                      AND n.hour_start = u.hour_start AND n.spec_id = u.spec_id AND n.rate = u.rate
                      AND u.hour_start >= %s AND u.hour_start < %s)
"""


def _usage_sync_postgresql(start: datetime, end: datetime, deployment_ids: list[str] | None) -> int:
    """Makes the usage rows of ``[start, end)`` exactly what the lifecycle says, in the database: the rows are
    computed by one set-based query (``billing.interval_metering``) into a temporary table (dropped at commit),
    vanished rows are deleted and new or changed ones upserted. Returns how many rows changed. Building the
    rows in Python and copying them in cost 50 s a month for 2,000 deployments (1.3 million rows). With
    ``deployment_ids``, only those deployments' rows are made and compared."""
    sql, params = interval_metering.usage_rows_sql(start=start, end=end, deployment_ids=deployment_ids)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE billing_usage_new ON COMMIT DROP AS {sql}", params)  # noqa: S608
        cursor.execute("ANALYZE billing_usage_new")
        cursor.execute(_DELETE_VANISHED_SQL, [start, end, deployment_ids, deployment_ids])
        changed = cursor.rowcount
        now = timezone.now()
        cursor.execute(_UPDATE_CHANGED_SQL, [now, start, end])
        changed += cursor.rowcount
        cursor.execute(_INSERT_NEW_SQL, [now, start, end])
        changed += cursor.rowcount
        cursor.execute("DROP TABLE billing_usage_new")
    return changed


def _usage_upsert(rows: list[tuple[tuple[str, datetime, str, str], tuple[str, int, str, Decimal]]]) -> None:
    """Inserts or updates usage rows ``((deployment, hour, spec, rate), (organization, seconds, currency,
    price))`` with the ORM's upsert (SQLite, the embedded default; PostgreSQL syncs in the database)."""
    now = timezone.now()
    UsageRecord.objects.bulk_create(
        [UsageRecord(deployment_id=key[0], hour_start=key[1], spec_id=key[2], rate=key[3], organization_id=org,
                     seconds=secs, currency=currency, hourly_price=price, metered_at=now)
         for key, (org, secs, currency, price) in rows],
        batch_size=2000, update_conflicts=True, unique_fields=["deployment", "hour_start", "spec", "rate"],
        update_fields=["seconds", "currency", "hourly_price", "metered_at"])


_METERING_LOCK = 0x6D71_6D65  # "mqme"


def _lock_metering() -> None:
    """Serializes metering runs (the hourly beat and a monthly re-meter may overlap) until the transaction
    ends, so one never deletes rows another has just written from newer events. SQLite has a single writer."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_METERING_LOCK])


def usage_month_reconcile(*, period_start: date) -> int:
    """Makes the month's usage rows what the lifecycle meters, before the month is invoiced: on PostgreSQL one
    query finds the deployments whose rows do not add up (an hour the hourly job never ran, an event recorded
    after its hour was metered) and only those are metered again; elsewhere (SQLite, small) the whole month is.
    Returns how many rows changed; a rerun, or a month the hourly job metered fully, changes none."""
    return usage_month_reconcile_and_sum(period_start=period_start).changed


@dataclass(frozen=True)
class MonthUsage:
    """What :func:`usage_month_reconcile_and_sum` did to a month's usage rows and what they add up to.

    ``lines``: seconds per organization, deployment, spec, rate and price of the month's rows after the check,
    as invoicing groups them (``organization_id, deployment_id, spec_id, rate, hourly_price, total_seconds``);
    None where the check did not sum them (SQLite): invoicing then sums the rows itself."""

    period_start: date
    changed: int
    lines: list[dict[str, Any]] | None


_MONTH_SUMS_TABLE = "billing_month_sums"
_MONTH_SUMS_SQL = f"""
    CREATE TEMP TABLE {_MONTH_SUMS_TABLE} ON COMMIT DROP AS
    SELECT organization_id, deployment_id, spec_id, rate, hourly_price, sum(seconds)::bigint AS seconds
    FROM billing_usagerecord WHERE hour_start >= %s AND hour_start < %s
    GROUP BY organization_id, deployment_id, spec_id, rate, hourly_price
"""  # noqa: S608 (constants joined; values are parameters)
_MONTH_SUMS_REFRESH_SQL = f"""
    INSERT INTO {_MONTH_SUMS_TABLE}
    SELECT organization_id, deployment_id, spec_id, rate, hourly_price, sum(seconds)::bigint AS seconds
    FROM billing_usagerecord WHERE hour_start >= %s AND hour_start < %s AND deployment_id = ANY(%s::text[])
    GROUP BY organization_id, deployment_id, spec_id, rate, hourly_price
"""  # noqa: S608


def usage_month_reconcile_and_sum(*, period_start: date) -> MonthUsage:
    """:func:`usage_month_reconcile`, also giving the month's rows summed as invoicing groups them, so the month
    close reads the month's rows once, not once to check them and again to invoice them (10,000 deployments:
    6.5 million rows). On PostgreSQL the rows are summed per organization, deployment, spec, rate and price into
    a temporary table, the check compares those sums (not the rows) with the lifecycle, and the deployments it
    meters again are summed anew; the sums are a few rows per deployment."""
    start = periods.as_utc(period_start)
    end = periods.as_utc(periods.month_after(period_start))
    if connection.vendor != "postgresql":
        return MonthUsage(period_start=period_start, changed=usage_meter_range(start=start, end=end), lines=None)
    sql, params = interval_metering.differing_deployments_sql(start=start, end=end, sums_table=_MONTH_SUMS_TABLE)
    changed = 0
    names = ("organization_id", "deployment_id", "spec_id", "rate", "hourly_price", "total_seconds")
    # One transaction: the table is gone whatever happens (created in it, dropped at its end or rolled back).
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_MONTH_SUMS_SQL, [start, end])
        cursor.execute(f"ANALYZE {_MONTH_SUMS_TABLE}")
        cursor.execute(sql, params)
        differing = sorted(row[0] for row in cursor.fetchall())
        if differing:
            _lock_metering()
            changed = _usage_sync_postgresql(start, end, differing)
            cursor.execute(f"DELETE FROM {_MONTH_SUMS_TABLE} WHERE deployment_id = ANY(%s::text[])",  # noqa: S608
                           [differing])
            cursor.execute(_MONTH_SUMS_REFRESH_SQL, [start, end, differing])
        cursor.execute(f"SELECT organization_id, deployment_id, spec_id, rate, hourly_price, seconds "  # noqa: S608
                       f"FROM {_MONTH_SUMS_TABLE}")
        lines = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        cursor.execute(f"DROP TABLE {_MONTH_SUMS_TABLE}")
    return MonthUsage(period_start=period_start, changed=changed, lines=lines)


def usage_meter_recent(*, hours: int = 3, now: datetime | None = None) -> int:
    """Meters the last ``hours`` closed hours (re-metering catches events recorded late)."""
    current = periods.hour_floor(now or timezone.now())
    return usage_meter_range(start=current - periods.HOUR * hours, end=current)


def usage_amount(*, seconds: int, hourly_price: Decimal, currency: str) -> Decimal:
    return money.usage_amount(seconds=seconds, hourly_price=hourly_price, currency=currency)
