"""The month close reads the month's usage rows once: its check sums them and its invoices take those sums. The
invoices must be exactly what invoicing from the rows (each step on its own) makes, rows re-metered by the check
included; a rerun is a no-op and a crash midway then a rerun leaves what one run leaves."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.db import DatabaseError, transaction
from django.db.models import Sum

from billing.models import Invoice, UsageRecord
from billing.services.closing import month_close
from billing.services.invoicing import invoices_generate_for_month
from billing.services.subscriptions import subscriptions_prorate_scales
from billing.services.usage import usage_meter_range, usage_month_reconcile, usage_month_reconcile_and_sum
from billing.tests.factories import BillingAccountFactory, record_event
from billing.tests.test_batched_close import crash_on_insert, invoice_snapshot
from billing.tests.test_proration import annual_deployment, scale
from deployments.models import Deployment, Spec
from deployments.tests.factories import DeploymentFactory
from projects.tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

MARCH = date(2026, 3, 1)
START, END = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)
AFTER_MARCH = datetime(2026, 4, 1, 0, 30, tzinfo=UTC)


def mixed_fleet() -> list[Deployment]:
    """Deployments running all month, scaled, stopped, on annual plans (some scaled: prorations), in organizations
    from three countries, some without a billing account, several deployments to an organization; March metered
    by the hourly path, then two late events the month close's check must meter again."""
    deployments = []
    organizations = [OrganizationFactory(country=country) for country in ("DE", "FR", "US", "DE", "AT")]
    for n, organization in enumerate(organizations):
        if n != 3:
            BillingAccountFactory(organization=organization, country=organization.country)
    for n in range(15):
        spec = Spec.objects.get(id="basic-1k" if n % 2 else "pro-1k")
        deployment = DeploymentFactory(organization=organizations[n % 5], spec=spec, target_spec=spec,
                                       created_at=START - timedelta(days=2))
        record_event(deployment, "running", START - timedelta(days=2))
        at = START + timedelta(days=1 + n, seconds=n * 7919 % 86400)
        if n % 3 == 1:
            scale(deployment, "basic-5k" if n % 2 else "pro-5k", at)
        elif n % 3 == 2:
            record_event(deployment, "stopping", at)
            record_event(deployment, "stopped", at + timedelta(minutes=2))
        deployments.append(deployment)
    for n in range(3):
        deployment = annual_deployment("pro-1k", switch=START + timedelta(days=3 + n, hours=n))
        if n:
            scale(deployment, "pro-5k", START + timedelta(days=10 + n, minutes=n))
        deployments.append(deployment)
    with time_machine.travel(START + timedelta(days=20), tick=False):
        subscriptions_prorate_scales()  # as the hourly job charges them, in March: on March's invoice
    usage_meter_range(start=START, end=END)
    # Recorded after their hours were metered: the check finds these two deployments' rows differ.
    record_event(deployments[0], "stopped", START + timedelta(days=20, minutes=17))
    record_event(deployments[3], "stopped", START + timedelta(days=25, hours=3))
    return deployments


def usage_snapshot() -> list[tuple]:
    return sorted(UsageRecord.objects.values_list("deployment_id", "hour_start", "spec_id", "rate", "seconds",
                                                  "hourly_price"))


def test_the_close_invoices_from_the_checks_sums_what_invoicing_from_the_rows_makes():
    mixed_fleet()
    with time_machine.travel(AFTER_MARCH, tick=False):
        with transaction.atomic():
            assert usage_month_reconcile(period_start=MARCH) > 0  # the late events
            subscriptions_prorate_scales()
            made = invoices_generate_for_month(period_start=MARCH)  # sums the rows itself
            unshared, rows = invoice_snapshot(), usage_snapshot()
            transaction.set_rollback(True)
        assert made == 8 and Invoice.objects.count() == 0
        assert month_close(now=AFTER_MARCH) == 8
        assert (invoice_snapshot(), usage_snapshot()) == (unshared, rows)
        assert month_close(now=AFTER_MARCH) == 8  # a rerun finds the invoices
        assert (invoice_snapshot(), usage_snapshot()) == (unshared, rows)
    invoices, charges, *_ = unshared
    assert sum(len(lines) for *_, lines in invoices) > 20
    assert {unit for *_, lines in invoices for _, _, _, unit, *_ in lines} >= {"hour", "year", "charge"}


def test_the_checks_sums_are_the_rows_sums_after_the_rows_it_metered_again():
    mixed_fleet()
    with time_machine.travel(AFTER_MARCH, tick=False):
        checked = usage_month_reconcile_and_sum(period_start=MARCH)
        assert checked.changed > 0 and checked.lines is not None
        assert usage_month_reconcile_and_sum(period_start=MARCH).changed == 0  # a rerun meters nothing
        from_rows = UsageRecord.objects.filter(hour_start__gte=START, hour_start__lt=END).values(
            "organization_id", "deployment_id", "spec_id", "rate", "hourly_price").annotate(
            total_seconds=Sum("seconds"))
        key = lambda row: tuple(sorted(row.items()))  # noqa: E731
        assert sorted(map(key, checked.lines)) == sorted(map(key, from_rows))
        with pytest.raises(ValueError):
            invoices_generate_for_month(period_start=date(2026, 2, 1), usage=checked)


def test_the_close_crashing_midway_then_rerun_writes_what_one_run_writes():
    deployments = mixed_fleet()
    third = sorted({d.organization_id for d in deployments})[2]
    with time_machine.travel(AFTER_MARCH, tick=False):
        with transaction.atomic():
            month_close(now=AFTER_MARCH)
            uninterrupted, rows = invoice_snapshot(), usage_snapshot()
            transaction.set_rollback(True)
        # The check (and its re-metering), the prorations and two batches of invoices commit; the third dies.
        with crash_on_insert("projects_auditevent", f"NEW.action = 'invoice.issue' AND "
                                                    f"NEW.organization_id = '{third}'"):
            with pytest.raises(DatabaseError, match="crash injected"):
                invoices_generate_for_month(period_start=MARCH, batch_size=1,
                                            usage=usage_month_reconcile_and_sum(period_start=MARCH))
        assert 0 < Invoice.objects.count() < 8
        assert month_close(now=AFTER_MARCH) == 8
        assert (invoice_snapshot(), usage_snapshot()) == (uninterrupted, rows)


def test_usage_of_a_deployment_dated_outside_the_month_still_gets_its_line_in_name_order():
    """Invoicing finds deployments by the month they lived in; one whose dates no longer say so (edited by hand
    since it was metered) still gets its line, in name order."""
    organization = OrganizationFactory(country="DE")
    BillingAccountFactory(organization=organization, country="DE")
    spec = Spec.objects.get(id="basic-1k")
    for name in ("zeta", "alpha"):
        deployment = DeploymentFactory(organization=organization, name=name, spec=spec, target_spec=spec,
                                       created_at=START - timedelta(days=2))
        record_event(deployment, "running", START - timedelta(days=2))
    usage_meter_range(start=START, end=START + timedelta(hours=3))
    Deployment.objects.filter(name="alpha").update(deleted_at=START - timedelta(days=1))
    with time_machine.travel(AFTER_MARCH, tick=False):
        assert invoices_generate_for_month(period_start=MARCH) == 1
    lines = Invoice.objects.get().lines.order_by("position")
    assert [line.description.split(" ")[0] for line in lines] == ["alpha", "zeta"]
    assert [line.quantity for line in lines] == [3, 3]
