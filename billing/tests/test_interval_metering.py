"""The set-based metering query against its oracle, the pure function ``metering.metered_seconds`` hour by hour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.interval_metering import differing_deployments_sql, usage_rows_sql
from billing.metering import STOPPED, Transition, metered_seconds
from billing.models import AnnualCharge, ChargeKind, Subscription, UsageRecord
from billing.services.usage import usage_meter_range, usage_month_reconcile
from billing.tests.factories import record_event
from deployments.models import SpecPrice
from deployments.tests.factories import DeploymentFactory

pytestmark = pytest.mark.django_db  # the query is PostgreSQL's (SQLite meters in Python)

START = datetime(2026, 3, 10, 12, tzinfo=UTC)
HOURS = 4
STATUSES = ["provisioning", "running", "scaling", "stopping", "stopped", "starting", "failed"]
# Offsets in microseconds from START: before the range (the state at its start), inside, on hour boundaries and
# after its end; sub-second parts exercise the truncation per piece.
MOMENT = st.one_of(st.integers(-2 * 3600, (HOURS + 1) * 3600).map(lambda s: s * 1_000_000),
                   st.integers(-2 * 3600 * 1_000_000, (HOURS + 1) * 3600 * 1_000_000))


def _at(offset: int) -> datetime:
    return START + timedelta(microseconds=offset)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(MOMENT, st.sampled_from(STATUSES), st.sampled_from(["basic-1k", "basic-5k"])),
                max_size=8),
       st.lists(st.tuples(MOMENT, st.integers(1, 3 * 3600 * 1_000_000)), max_size=3))
def test_the_query_meters_what_the_pure_function_meters_hour_by_hour(raw_events, raw_terms):
    end = START + timedelta(hours=HOURS)
    with transaction.atomic():
        deployment = DeploymentFactory(created_at=START - timedelta(hours=3))
        # Events of one timestamp: the query takes them in id order (the last one is in force), so the oracle
        # is given them in that order too (it keeps the order of equal timestamps).
        recorded = sorted((record_event(deployment, status, _at(offset), spec_id=spec)
                           for offset, status, spec in raw_events), key=lambda e: (e.created_at, e.id))
        events = [Transition(e.created_at, e.to_status, e.spec_id) for e in recorded]
        # One term charge per term start (a unique constraint), so one end per start.
        terms = list({_at(offset): (_at(offset), _at(offset + length)) for offset, length in raw_terms}.values())
        subscription = Subscription.objects.create(organization_id=deployment.organization_id, deployment=deployment)
        for term_start, term_end in terms:
            AnnualCharge.objects.create(organization_id=deployment.organization_id, subscription=subscription,
                                        deployment=deployment, kind=ChargeKind.TERM, spec_id="basic-1k",
                                        amount=1, currency="USD", term_start=term_start, term_end=term_end)
        with connection.cursor() as cursor:
            cursor.execute(*usage_rows_sql(start=START, end=end))
            rows = cursor.fetchall()
            # The month check's totals (whole hours counted, not generated) add up to the same rows.
            differing = differing_deployments_sql(start=START, end=end)
            cursor.execute(*differing)
            missing = cursor.fetchall()
            usage_meter_range(start=START, end=end)
            cursor.execute(*differing)
            after = cursor.fetchall()
        transaction.set_rollback(True)
    expected = {}
    for n in range(HOURS):
        hour = START + timedelta(hours=n)
        for (spec_id, rate), seconds in metered_seconds(events, start=hour,
                                                         end=hour + timedelta(hours=1), annual_terms=terms).items():
            price = SpecPrice.objects.get(spec_id=spec_id, currency="USD")
            expected[(hour, spec_id, rate)] = (seconds, price.stopped_hourly if rate == STOPPED else price.hourly)
    got = {(hour, spec_id, rate): (seconds, price) for _, hour, spec_id, rate, _, seconds, _, price in rows}
    assert got == expected
    assert (missing, after) == ([(deployment.id,)] if rows else [], [])
    assert all(row[0] == deployment.id and row[4] == deployment.organization_id and row[6] == "USD" for row in rows)



def test_the_month_close_meters_hours_the_hourly_job_missed_and_late_events_once():
    march, april = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)
    deployment = DeploymentFactory(created_at=march - timedelta(days=1))
    record_event(deployment, "running", march - timedelta(days=1))
    usage_meter_range(start=march, end=march + timedelta(days=10))  # then the beat stopped for three weeks
    record_event(deployment, "stopped", march + timedelta(days=5, hours=10, minutes=30))  # recorded late
    assert usage_month_reconcile(period_start=march.date()) > 0
    rows = list(UsageRecord.objects.order_by("hour_start", "rate").values_list("hour_start", "rate", "seconds"))
    UsageRecord.objects.all().delete()
    usage_meter_range(start=march, end=april)
    assert rows == list(UsageRecord.objects.order_by("hour_start", "rate").values_list("hour_start", "rate",
                                                                                          "seconds"))
    assert usage_month_reconcile(period_start=march.date()) == 0  # a rerun writes nothing
