"""Scaling a deployment on an annual plan: the prorated difference for the rest of the term, charged once."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
import time_machine

from billing import tasks
from billing.models import AnnualCharge, Invoice, Subscription, UsageRecord
from billing.services.invoicing import invoice_generate, invoices_generate_for_month
from billing.services.subscriptions import (
    subscription_switch_to_annual,
    subscriptions_prorate_scales,
    subscriptions_roll_over,
)
from billing.services.usage import usage_meter_hour
from billing.tests.factories import BillingAccountFactory, record_event
from deployments.models import Deployment, Spec
from deployments.tests.factories import DeploymentFactory
from projects.tenancy import Principal
from projects.tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

ANNUAL = {"pro-1k": Decimal("4468.00"), "pro-5k": Decimal("8191.00"), "pro-10k": Decimal("13403.00")}
SWITCH = datetime(2026, 3, 15, 9, tzinfo=UTC)
TERM_END = datetime(2027, 3, 15, 9, tzinfo=UTC)


def annual_deployment(spec_id: str = "pro-1k", switch: datetime = SWITCH, renew: bool = False) -> Deployment:
    organization = OrganizationFactory(country="DE")
    BillingAccountFactory(organization=organization, country="DE")
    deployment = DeploymentFactory(organization=organization, spec=Spec.objects.get(id=spec_id),
                                   created_at=switch - timedelta(days=1))
    record_event(deployment, "running", switch - timedelta(days=1))
    with time_machine.travel(switch, tick=False):
        subscription_switch_to_annual(principal=Principal.for_system(organization), deployment=deployment,
                                      renew=renew)
    return deployment


def scale(deployment: Deployment, spec_id: str, at: datetime) -> None:
    """What a scale records: ``running → scaling`` at the old spec, then ``scaling → running`` at the new one
    once the rollout has settled (the event that puts the new spec in force)."""
    record_event(deployment, "scaling", at - timedelta(minutes=10))
    record_event(deployment, "running", at, spec_id=spec_id)
    Deployment.objects.filter(pk=deployment.pk).update(spec_id=spec_id, target_spec_id=spec_id)
    deployment.spec_id = deployment.target_spec_id = spec_id


def expected(old: str, new: str, at: datetime, start: datetime = SWITCH, end: datetime = TERM_END) -> Decimal:
    share = Decimal(int((end - at).total_seconds())) / Decimal(int((end - start).total_seconds()))
    return ((ANNUAL[new] - ANNUAL[old]) * share).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def prorations(deployment: Deployment) -> list[tuple[str, str, Decimal]]:
    return [(c.previous_spec_id, c.spec_id, c.amount)
            for c in AnnualCharge.objects.filter(deployment=deployment, kind="proration").order_by("effective_at")]


def test_upgrade_mid_term_charges_the_prorated_difference_once():
    deployment = annual_deployment()
    at = datetime(2026, 9, 15, 9, tzinfo=UTC)  # 181 of 365 days left
    scale(deployment, "pro-5k", at)
    assert subscriptions_prorate_scales(now=at + timedelta(minutes=5)) == 1
    assert prorations(deployment) == [("pro-1k", "pro-5k", Decimal("1846.20"))]  # 3,723 × 181/365
    assert expected("pro-1k", "pro-5k", at) == Decimal("1846.20")
    assert Subscription.objects.get(deployment=deployment).annual_price == ANNUAL["pro-5k"]
    # Reruns (and the hourly task delivered twice) charge nothing more.
    assert subscriptions_prorate_scales(now=at + timedelta(hours=1)) == 0
    with time_machine.travel(at + timedelta(hours=1), tick=False):
        tasks.usage_meter_recent()
        tasks.usage_meter_recent()
    assert len(prorations(deployment)) == 1
    # The prepaid term is metered at neither rate, before or after the scale.
    assert not UsageRecord.objects.filter(deployment=deployment).exists()


def test_downgrade_is_a_credit_and_a_failed_scale_charges_nothing():
    deployment = annual_deployment("pro-10k")
    failed_at = datetime(2026, 6, 1, tzinfo=UTC)
    record_event(deployment, "scaling", failed_at)
    record_event(deployment, "failed", failed_at + timedelta(minutes=30))  # the old spec stays in force
    record_event(deployment, "running", failed_at + timedelta(hours=1))
    assert subscriptions_prorate_scales(now=failed_at + timedelta(hours=2)) == 0
    at = datetime(2026, 10, 1, 12, 30, tzinfo=UTC)
    scale(deployment, "pro-1k", at)
    assert subscriptions_prorate_scales(now=at + timedelta(hours=1)) == 1
    [(old, new, amount)] = prorations(deployment)
    assert (old, new) == ("pro-10k", "pro-1k") and amount == expected("pro-10k", "pro-1k", at) < 0
    assert Subscription.objects.get(deployment=deployment).annual_price == ANNUAL["pro-1k"]


def test_scaling_twice_in_a_term_charges_each_step_from_the_spec_paid_for():
    deployment = annual_deployment()
    first, second = datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 11, 20, 17, 45, 12, tzinfo=UTC)
    scale(deployment, "pro-10k", first)
    scale(deployment, "pro-5k", second)
    # Both found in one run, in order; the second is priced from pro-10k (what the first made the customer pay).
    assert subscriptions_prorate_scales(now=second + timedelta(minutes=1)) == 2
    assert prorations(deployment) == [("pro-1k", "pro-10k", expected("pro-1k", "pro-10k", first)),
                                      ("pro-10k", "pro-5k", expected("pro-10k", "pro-5k", second))]
    assert Subscription.objects.get(deployment=deployment).annual_price == ANNUAL["pro-5k"]
    assert subscriptions_prorate_scales(now=second + timedelta(hours=1)) == 0


def test_scale_on_the_last_day_then_renewal_charges_the_new_price():
    deployment = annual_deployment(renew=True)
    at = TERM_END - timedelta(hours=1)
    scale(deployment, "pro-5k", at)
    assert subscriptions_prorate_scales(now=at + timedelta(minutes=1)) == 1
    # 3,723 × 3,600 s / 31,536,000 s = 0.425 exactly: rounded half-up.
    assert prorations(deployment) == [("pro-1k", "pro-5k", Decimal("0.43"))]
    assert subscriptions_roll_over(now=TERM_END + timedelta(minutes=5)) == 1
    renewal = AnnualCharge.objects.get(deployment=deployment, kind="term", term_start=TERM_END)
    assert (renewal.spec_id, renewal.amount) == ("pro-5k", ANNUAL["pro-5k"])
    assert subscriptions_prorate_scales(now=TERM_END + timedelta(hours=1)) == 0


def test_scale_landing_between_term_end_and_rollover_is_not_charged_twice():
    deployment = annual_deployment(renew=True)
    scale(deployment, "pro-5k", TERM_END + timedelta(minutes=3))  # the rollover runs after it, at the new spec
    assert subscriptions_roll_over(now=TERM_END + timedelta(minutes=5)) == 1
    assert AnnualCharge.objects.get(deployment=deployment, kind="term", term_start=TERM_END).spec_id == "pro-5k"
    assert subscriptions_prorate_scales(now=TERM_END + timedelta(minutes=10)) == 0
    assert prorations(deployment) == []


def test_leap_year_term_has_366_days():
    switch = datetime(2027, 6, 1, tzinfo=UTC)
    deployment = annual_deployment(switch=switch)
    subscription = Subscription.objects.get(deployment=deployment)
    assert subscription.term_end - subscription.term_start == timedelta(days=366)  # contains 29 February 2028
    at = datetime(2028, 3, 1, tzinfo=UTC)  # 92 of 366 days left
    scale(deployment, "pro-5k", at)
    assert subscriptions_prorate_scales(now=at + timedelta(minutes=1)) == 1
    assert prorations(deployment) == [("pro-1k", "pro-5k", Decimal("935.84"))]  # 3,723 × 92/366 = 935.836…


def test_invoice_lines_for_an_upgrade_and_a_downgrade():
    deployment = annual_deployment()
    up, down = datetime(2026, 3, 20, tzinfo=UTC), datetime(2026, 3, 25, 6, tzinfo=UTC)
    scale(deployment, "pro-10k", up)
    scale(deployment, "pro-5k", down)
    subscriptions_prorate_scales(now=down + timedelta(hours=1))
    with time_machine.travel(datetime(2026, 4, 1, 0, 30, tzinfo=UTC), tick=False):
        invoice = invoice_generate(account=deployment.organization.billing_account,
                                   period_start=date(2026, 3, 1))
    lines = list(invoice.lines.all())
    assert [(line.unit, line.amount) for line in lines] == [
        ("year", ANNUAL["pro-1k"]), ("charge", expected("pro-1k", "pro-10k", up)),
        ("credit", expected("pro-10k", "pro-5k", down))]
    assert "upgrade charge: pro-1k to pro-10k" in lines[1].description
    assert "downgrade credit: pro-10k to pro-5k" in lines[2].description
    assert invoice.subtotal == sum(line.amount for line in lines)
    assert invoice.total == invoice.subtotal + invoice.vat_amount
    assert invoice.vat_amount == (invoice.subtotal * Decimal("0.19")).quantize(Decimal("0.01"), ROUND_HALF_UP)


def test_credits_beyond_the_charges_are_carried_forward_never_a_negative_invoice():
    deployment = annual_deployment("pro-10k")
    with time_machine.travel(datetime(2026, 4, 1, 0, 30, tzinfo=UTC), tick=False):
        assert invoices_generate_for_month(period_start=date(2026, 3, 1)) == 1  # the term: 13,403.00
    at = datetime(2026, 4, 10, tzinfo=UTC)
    scale(deployment, "pro-1k", at)
    subscriptions_prorate_scales(now=at + timedelta(hours=1))
    credit = expected("pro-10k", "pro-1k", at)
    # Nothing else to charge in April: no invoice, no number used; the credit waits.
    with time_machine.travel(datetime(2026, 5, 1, 0, 30, tzinfo=UTC), tick=False):
        assert invoices_generate_for_month(period_start=date(2026, 4, 1)) == 0
    # May: a small hourly deployment; the credit covers it and the rest is carried forward.
    hourly = DeploymentFactory(organization=deployment.organization, spec=Spec.objects.get(id="pro-1k"),
                               created_at=datetime(2026, 5, 1, tzinfo=UTC))
    record_event(hourly, "running", datetime(2026, 5, 1, tzinfo=UTC))
    for n in range(10):
        usage_meter_hour(hour_start=datetime(2026, 5, 1, n, tzinfo=UTC))
    record_event(hourly, "stopping", datetime(2026, 5, 1, 10, tzinfo=UTC))
    with time_machine.travel(datetime(2026, 6, 1, 0, 30, tzinfo=UTC), tick=False):
        assert invoices_generate_for_month(period_start=date(2026, 5, 1)) == 1
    may = Invoice.objects.get(period_start=date(2026, 5, 1))
    amounts = [line.amount for line in may.lines.all()]
    assert amounts == [Decimal("6.00"), credit, -(Decimal("6.00") + credit)]
    assert may.lines.last().description == "Credit carried forward to the next invoice"
    assert may.subtotal == sum(amounts) == 0 and may.vat_amount == 0 and may.total == 0
    carried = AnnualCharge.objects.get(kind="carried_credit", invoice__isnull=True)
    assert carried.amount == Decimal("6.00") + credit and carried.source_invoice_id == may.id
    # A rerun returns the same invoice and carries nothing more.
    with time_machine.travel(datetime(2026, 6, 1, 1, tzinfo=UTC), tick=False):
        assert invoice_generate(account=may.account, period_start=date(2026, 5, 1)) == may
    assert AnnualCharge.objects.filter(kind="carried_credit").count() == 1
    # June: an upgrade and a second annual term outweigh the credit left, which is used up.
    up = datetime(2026, 6, 10, tzinfo=UTC)
    scale(deployment, "pro-10k", up)
    subscriptions_prorate_scales(now=up + timedelta(hours=1))
    with time_machine.travel(datetime(2026, 6, 12, tzinfo=UTC), tick=False):
        subscription_switch_to_annual(principal=Principal.for_system(hourly.organization), deployment=hourly,
                                      renew=False)
    with time_machine.travel(datetime(2026, 7, 1, 0, 30, tzinfo=UTC), tick=False):
        june = invoice_generate(account=may.account, period_start=date(2026, 6, 1))
    lines = list(june.lines.all())
    assert lines[0].description == f"Credit brought forward from invoice {may.number}"
    assert lines[0].amount == carried.amount and lines[0].deployment_id is None
    assert [line.amount for line in lines[1:]] == [expected("pro-1k", "pro-10k", up), ANNUAL["pro-1k"]]
    assert june.subtotal == sum(line.amount for line in lines) > 0
    assert june.total == june.subtotal + june.vat_amount
