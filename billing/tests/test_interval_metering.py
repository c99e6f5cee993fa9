"""The set-based metering query against its oracle, the pure function ``metering.metered_seconds`` hour by hour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.interval_metering import usage_rows_sql
from billing.metering import STOPPED, Transition, metered_seconds
from billing.models import AnnualCharge, ChargeKind, Subscription
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
        sql, params = usage_rows_sql(start=START, end=end)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
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
    assert all(row[0] == deployment.id and row[4] == deployment.organization_id and row[6] == "USD" for row in rows)

