"""Clock edges: year and month boundaries, daylight-saving changes and leap years.

Billing counts in UTC hours and calendar months of UTC; these tests pin what that means at the edges, and
that a server configured with a local time zone (DST) meters and invoices exactly the same.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.test import override_settings

from billing import money
from billing.models import BillingAccount, Invoice, UsageRecord
from billing.services.invoicing import invoice_generate
from billing.services.usage import usage_meter_range
from billing.tests.factories import record_event
from deployments.tests.factories import DeploymentFactory

pytestmark = pytest.mark.django_db

BERLIN = ZoneInfo("Europe/Berlin")


def running_since(at: datetime, **deployment_fields):
    deployment = DeploymentFactory(created_at=at - timedelta(minutes=5), **deployment_fields)
    record_event(deployment, "running", at)
    return deployment


def seconds_between(deployment, start: datetime, end: datetime) -> int:
    return sum(UsageRecord.objects.filter(deployment=deployment, hour_start__gte=start, hour_start__lt=end)
               .values_list("seconds", flat=True))


def invoice_for(deployment, period_start: date, issued: datetime) -> Invoice:
    account, _ = BillingAccount.objects.get_or_create(organization=deployment.organization)
    with time_machine.travel(issued, tick=False):
        invoice = invoice_generate(account=account, period_start=period_start)
    assert invoice is not None
    return invoice


def test_year_boundary_splits_usage_between_invoices_numbered_in_the_year_they_are_issued():
    new_year = datetime(2027, 1, 1, tzinfo=UTC)
    first = running_since(new_year - timedelta(hours=2, minutes=30))
    second = running_since(new_year - timedelta(hours=1))
    record_event(first, "stopping", new_year + timedelta(hours=1, minutes=15))
    usage_meter_range(start=new_year - timedelta(hours=3), end=new_year + timedelta(hours=3))

    assert seconds_between(first, new_year - timedelta(days=1), new_year) == 2 * 3600 + 30 * 60
    assert seconds_between(first, new_year, new_year + timedelta(days=1)) == 3600 + 15 * 60
    december = invoice_for(first, date(2026, 12, 1), issued=datetime(2027, 1, 1, 0, 30, tzinfo=UTC))
    december_second = invoice_for(second, date(2026, 12, 1), issued=datetime(2027, 1, 1, 0, 31, tzinfo=UTC))
    assert (december.period_start, december.period_end) == (date(2026, 12, 1), date(2027, 1, 1))
    assert december.lines.get().quantity == Decimal("2.5000")
    # Numbers run per site and year of issue: December's invoices, issued on 1 January, open 2027's sequence.
    assert december.number == "MQ-GLOBAL-2027-000001"
    assert december_second.number == "MQ-GLOBAL-2027-000002"
    january = invoice_for(first, date(2027, 1, 1), issued=datetime(2027, 2, 1, 0, 30, tzinfo=UTC))
    assert january.lines.get().quantity == Decimal("1.2500")
    assert january.number == "MQ-GLOBAL-2027-000003"


def test_an_event_in_the_last_second_of_a_month_lands_in_that_month():
    month_end = datetime(2026, 5, 1, tzinfo=UTC)
    deployment = DeploymentFactory(created_at=month_end - timedelta(hours=2))
    record_event(deployment, "running", month_end - timedelta(seconds=1))
    record_event(deployment, "stopping", month_end + timedelta(seconds=1))
    usage_meter_range(start=month_end - timedelta(hours=1), end=month_end + timedelta(hours=1))
    assert seconds_between(deployment, month_end - timedelta(hours=1), month_end) == 1
    assert seconds_between(deployment, month_end, month_end + timedelta(hours=1)) == 1


@pytest.mark.parametrize("local_day, local_hours", [
    (date(2026, 3, 29), 23),   # clocks go forward in Europe: a 23-hour local day
    (date(2026, 10, 25), 25),  # clocks go back: a 25-hour local day
])
def test_daylight_saving_days_meter_their_real_length_whatever_the_server_time_zone(local_day, local_hours):
    start = datetime(local_day.year, local_day.month, local_day.day, tzinfo=BERLIN).astimezone(UTC)
    end = datetime.combine(local_day + timedelta(days=1), datetime.min.time(), tzinfo=BERLIN).astimezone(UTC)
    assert (end - start) == timedelta(hours=local_hours)
    deployment = running_since(start - timedelta(hours=1))
    with override_settings(TIME_ZONE="Europe/Berlin"):
        usage_meter_range(start=start, end=end)
        assert usage_meter_range(start=start, end=end) == 0  # a rerun changes nothing
    rows = UsageRecord.objects.filter(deployment=deployment).order_by("hour_start")
    # One row per real hour: none doubled when the clock goes back, none missing when it goes forward.
    assert rows.count() == local_hours
    assert {r.seconds for r in rows} == {3600}
    assert len({r.hour_start for r in rows}) == local_hours


def test_leap_year_february_has_696_hours():
    february = datetime(2028, 2, 1, tzinfo=UTC)
    march = datetime(2028, 3, 1, tzinfo=UTC)
    deployment = running_since(february - timedelta(days=1))
    usage_meter_range(start=february, end=march)
    assert seconds_between(deployment, february, march) == 696 * 3600
    invoice = invoice_for(deployment, date(2028, 2, 1), issued=datetime(2028, 3, 1, 1, tzinfo=UTC))
    line = invoice.lines.get()
    assert line.quantity == Decimal("696.0000")
    assert line.amount == money.quantize(Decimal(696) * line.unit_price, invoice.currency)
    assert invoice.period_end == date(2028, 3, 1)
