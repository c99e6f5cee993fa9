from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from billing import tasks
from billing.models import AnnualCharge, BillingAccount, Invoice, InvoiceCounter, UsageRecord, VatStatus
from billing.services.accounts import billing_account_operator_update
from billing.services.invoicing import invoice_generate, invoices_generate_for_month
from billing.services.subscriptions import subscription_switch_to_annual, subscriptions_roll_over
from billing.services.usage import usage_meter_hour
from billing.tests.factories import BillingAccountFactory, record_event
from deployments.models import Spec
from deployments.tests.factories import DeploymentFactory
from projects.tenancy import Principal
from projects.tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

MARCH = date(2026, 3, 1)
AFTER_MARCH = datetime(2026, 4, 1, 0, 30, tzinfo=UTC)


def usage(deployment, hours: int, seconds: int = 3600, spec_id: str | None = None, start=None) -> None:
    start = start or datetime(2026, 3, 5, tzinfo=UTC)
    spec_id = spec_id or deployment.spec_id
    price = Spec.objects.get(id=spec_id).prices.get(currency=deployment.organization.currency).hourly
    for n in range(hours):
        UsageRecord.objects.create(organization_id=deployment.organization_id, deployment=deployment,
                                   hour_start=start + timedelta(hours=n), spec_id=spec_id, seconds=seconds,
                                   currency=deployment.organization.currency, hourly_price=price)


def account_for(*, country: str = "DE", site: str = "global", vat_number: str = "",
                vat_status: str = VatStatus.UNCHECKED) -> BillingAccount:
    org = OrganizationFactory(country=country, site=site)
    return BillingAccountFactory(organization=org, country=country, vat_number=vat_number, vat_status=vat_status)


def generate(account: BillingAccount, period: date = MARCH) -> Invoice | None:
    with time_machine.travel(AFTER_MARCH, tick=False):
        return invoice_generate(account=account, period_start=period)


def test_invoice_lines_rounding_and_totals():
    account = account_for()
    deployment = DeploymentFactory(organization=account.organization)  # basic-1k: 0.18/h
    usage(deployment, hours=10)
    usage(deployment, hours=1, seconds=1234, spec_id="basic-5k", start=datetime(2026, 3, 20, tzinfo=UTC))
    invoice = generate(account)
    lines = list(invoice.lines.all())
    assert [(line.unit, line.quantity, line.amount) for line in lines] == [
        ("hour", Decimal("10.0000"), Decimal("1.80")),
        ("hour", Decimal("0.3428"), Decimal("0.15")),  # 1234 s × 0.45/h = 0.15425 → 0.15
    ]
    assert invoice.subtotal == Decimal("1.95")
    assert invoice.vat_rate == Decimal("19") and invoice.vat_amount == Decimal("0.37")
    assert invoice.total == invoice.subtotal + invoice.vat_amount == Decimal("2.32")
    assert invoice.status == "open" and invoice.currency == "USD"
    assert invoice.number == "MQ-GLOBAL-2026-000001"


def test_rerun_never_makes_a_second_invoice_and_numbers_have_no_gaps():
    accounts = [account_for() for _ in range(3)]
    for account in accounts:
        usage(DeploymentFactory(organization=account.organization), hours=2)
    empty = account_for()  # nothing to charge: no invoice, no number used
    for _ in range(3):
        for account in [*accounts, empty]:
            generate(account)
    assert Invoice.objects.count() == 3
    assert generate(empty) is None
    numbers = sorted(Invoice.objects.values_list("number", flat=True))
    assert numbers == [f"MQ-GLOBAL-2026-{n:06d}" for n in (1, 2, 3)]
    assert InvoiceCounter.objects.get(site="global", year=2026).last_number == 3
    cn = account_for(country="CN", site="cn")
    usage(DeploymentFactory(organization=cn.organization), hours=1)
    assert generate(cn).number == "MQ-CN-2026-000001"


@pytest.mark.parametrize(("country", "site", "vat_number", "status", "rate", "note"), [
    ("DE", "global", "", VatStatus.UNCHECKED, "19", ""),  # domestic
    ("FR", "global", "FR40303265045", VatStatus.VALID, "0", "Reverse charge"),  # EU B2B, VIES-valid
    ("FR", "global", "FR40303265045", VatStatus.UNCHECKED, "20", ""),  # not confirmed yet: FR rate
    ("GR", "global", "EL094259216", VatStatus.UNCHECKED, "24", ""),  # EU consumer treatment
    ("IT", "global", "", VatStatus.UNCHECKED, "22", ""),  # EU consumer
    ("US", "global", "", VatStatus.UNCHECKED, "0", "Outside"),  # non-EU
    ("GB", "global", "XI980780684", VatStatus.VALID, "0", "Outside"),  # Northern Ireland, services
    ("CN", "cn", "", VatStatus.UNCHECKED, "6", ""),  # cn site domestic
])
def test_invoice_vat(country, site, vat_number, status, rate, note):
    account = account_for(country=country, site=site, vat_number=vat_number, vat_status=status)
    usage(DeploymentFactory(organization=account.organization), hours=100)
    invoice = generate(account)
    assert invoice.vat_rate == Decimal(rate)
    assert invoice.vat_note.startswith(note)
    assert invoice.vat_amount >= 0
    assert invoice.total == invoice.subtotal + invoice.vat_amount
    assert invoice.currency == ("CNY" if site == "cn" else "USD")


def test_annual_charge_invoiced_once():
    account = account_for()
    deployment = DeploymentFactory(organization=account.organization)
    with time_machine.travel(datetime(2026, 3, 15, 9, tzinfo=UTC), tick=False):
        subscription_switch_to_annual(principal=Principal.for_system(account.organization),
                                      deployment=deployment, renew=False)
    march = generate(account)
    assert [(line.unit, line.amount) for line in march.lines.all()] == [("year", Decimal("1340.00"))]
    assert AnnualCharge.objects.get().invoice_id == march.id
    with time_machine.travel(datetime(2026, 5, 1, tzinfo=UTC), tick=False):
        assert invoice_generate(account=account, period_start=date(2026, 4, 1)) is None


def test_open_period_and_bad_period_are_refused():
    account = account_for()
    with time_machine.travel(datetime(2026, 3, 31, 23, tzinfo=UTC), tick=False):
        with pytest.raises(Exception, match="not closed"):
            invoice_generate(account=account, period_start=MARCH)
        with pytest.raises(Exception, match="1st"):
            invoice_generate(account=account, period_start=date(2026, 2, 2))


def test_beat_task_invoices_previous_month_idempotently():
    account = account_for()
    started = datetime(2025, 12, 31, 21, tzinfo=UTC)
    deployment = DeploymentFactory(organization=account.organization, created_at=started)
    record_event(deployment, "running", started)
    with time_machine.travel(datetime(2026, 1, 1, 0, 30, tzinfo=UTC), tick=False):
        assert tasks.invoices_generate_previous_month() == 1
        assert tasks.invoices_generate_previous_month() == 1  # returns the existing one
    invoice = Invoice.objects.get()
    assert invoice.period_start == date(2025, 12, 1) and invoice.period_end == date(2026, 1, 1)
    assert invoice.number == "MQ-GLOBAL-2026-000001"
    assert invoice.lines.get().quantity == Decimal(3)  # metered by the task itself


def test_operator_update_is_audited_and_enables_reverse_charge():
    from projects.models import AuditEvent
    from projects.tests.factories import UserFactory

    account = account_for(country="FR", vat_number="FR40303265045")
    operator = Principal.for_staff(UserFactory(is_staff=True), account.organization)
    billing_account_operator_update(principal=operator, account=account, vat_status=VatStatus.VALID,
                                    tax_exempt=False)
    assert AuditEvent.objects.filter(action="billing_account.operator_update").count() == 1
    usage(DeploymentFactory(organization=account.organization), hours=5)
    invoice = generate(account)
    assert invoice.vat_rate == 0 and invoice.vat_note.startswith("Reverse charge")
    with pytest.raises(Exception, match="no VAT number"):
        billing_account_operator_update(principal=operator, account=account_for(), vat_status="valid")


@pytest.mark.parametrize("renews", [True, False])
def test_term_end_renews_or_returns_to_hourly(renews):
    from billing.models import Subscription

    account = account_for()
    start = datetime(2026, 1, 10, 8, tzinfo=UTC)
    deployment = DeploymentFactory(organization=account.organization, created_at=start - timedelta(days=1))
    record_event(deployment, "running", start - timedelta(days=1))
    with time_machine.travel(start, tick=False):
        subscription_switch_to_annual(principal=Principal.for_system(account.organization),
                                      deployment=deployment, renew=renews)
    term_end = datetime(2027, 1, 10, 8, tzinfo=UTC)
    later = term_end + timedelta(minutes=30)
    assert subscriptions_roll_over(now=later) == 1
    assert subscriptions_roll_over(now=later) == 0  # idempotent
    subscription = Subscription.objects.get(deployment=deployment)
    usage_meter_hour(hour_start=term_end)
    metered = list(UsageRecord.objects.filter(deployment=deployment).values_list("seconds", flat=True))
    if renews:
        assert subscription.mode == "annual" and subscription.term_start == term_end
        assert AnnualCharge.objects.filter(deployment=deployment).count() == 2
        assert metered == []
    else:
        assert subscription.mode == "hourly" and subscription.term_end is None
        assert AnnualCharge.objects.filter(deployment=deployment).count() == 1
        assert metered == [3600]  # hourly again from the second the term ended
    # The hour of the original switch stays split at that second.
    usage_meter_hour(hour_start=start)
    assert not UsageRecord.objects.filter(deployment=deployment, hour_start=start).exists()


def test_stopped_hours_are_a_separate_line_at_the_stopped_price():
    account = account_for()
    start = datetime(2026, 3, 5, tzinfo=UTC)
    deployment = DeploymentFactory(organization=account.organization, created_at=start)  # basic-1k
    record_event(deployment, "running", start)
    record_event(deployment, "stopping", start + timedelta(hours=2))
    record_event(deployment, "stopped", start + timedelta(hours=2, minutes=5))
    for n in range(12):
        usage_meter_hour(hour_start=start + timedelta(hours=n))
    invoice = generate(account)
    lines = list(invoice.lines.all())
    assert [(line.description.rsplit(", ", 1)[-1], line.quantity, line.unit_price, line.amount) for line in lines] == [
        ("hourly", Decimal("2.0000"), Decimal("0.1800"), Decimal("0.36")),
        ("stopped (storage)", Decimal("9.9167"), Decimal("0.0100"), Decimal("0.10")),  # 9 h 55 min
    ]
    assert invoice.subtotal == Decimal("0.46") and invoice.total == invoice.subtotal + invoice.vat_amount


def test_monthly_run_reads_usage_once_and_writes_the_same_invoices_as_one_by_one():
    """invoices_generate_for_month aggregates every organization's usage in one query; its invoices equal
    those invoice_generate writes reading each organization's usage itself."""
    from django.db import transaction

    accounts = [account_for(country=country) for country in ("DE", "FR", "US")]
    for n, account in enumerate(accounts):
        for k in range(n + 1):
            deployment = DeploymentFactory(organization=account.organization, name=f"b{2 - k}")
            usage(deployment, hours=3 + k, seconds=1234 + 100 * n)
            usage(deployment, hours=2, spec_id="basic-5k", start=datetime(2026, 3, 20, tzinfo=UTC))
            UsageRecord.objects.filter(deployment=deployment, hour_start__day=20).update(rate="stopped")

    def snapshot():
        return sorted((i.organization_id, i.number, i.subtotal, i.total,
                       [(line.position, line.description, line.quantity, line.unit_price, line.amount)
                        for line in i.lines.all()]) for i in Invoice.objects.all())

    with time_machine.travel(AFTER_MARCH, tick=False):
        with transaction.atomic():
            assert invoices_generate_for_month(period_start=MARCH) == 3
            monthly = snapshot()
            transaction.set_rollback(True)
        assert not Invoice.objects.exists()
        for account in sorted(accounts, key=lambda a: a.organization_id):
            invoice_generate(account=account, period_start=MARCH)
        assert snapshot() == monthly
        assert [len(lines) for *_, lines in monthly] and all(len(lines) >= 2 for *_, lines in monthly)
