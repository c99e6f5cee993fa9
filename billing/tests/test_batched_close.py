"""The month close's runs in batches: a few statements per batch whatever the number of organizations or scales,
and a run that crashes midway, then reruns, leaves what an uninterrupted run leaves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext

from billing.models import AnnualCharge, BillingAccount, ChargeKind, Invoice, InvoiceCounter, Subscription, UsageRecord
from billing.services.invoicing import invoices_generate_for_month
from billing.services.subscriptions import subscriptions_prorate_scales
from billing.tests.factories import BillingAccountFactory, record_event
from billing.tests.test_proration import annual_deployment, scale
from deployments.models import Deployment, Spec
from deployments.tests.factories import DeploymentFactory
from projects.models import AuditEvent, Organization
from projects.tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

MARCH = date(2026, 3, 1)
AFTER_MARCH = datetime(2026, 4, 1, 0, 30, tzinfo=UTC)
COUNTRIES = ("DE", "FR", "US")  # domestic, EU consumer, outside the EU


def organizations_to_invoice(count: int) -> list[Organization]:
    """``count`` organizations with March to invoice, in a mix: each has a deployment metered for a few hours;
    every third also an annual term to charge; every fourth has no billing account yet (the run creates it);
    every fifth (from the second) a downgrade credit, most larger than what they owe (the rest is carried forward)."""
    organizations = []
    price = Spec.objects.get(id="basic-1k").prices.get(currency="USD").hourly
    for n in range(count):
        organization = OrganizationFactory(country=COUNTRIES[n % 3])
        if n % 4:
            BillingAccountFactory(organization=organization, country=organization.country)
        deployment = DeploymentFactory(organization=organization, spec=Spec.objects.get(id="basic-1k"))
        UsageRecord.objects.bulk_create(
            UsageRecord(organization=organization, deployment=deployment, spec_id="basic-1k", seconds=3600 - n,
                        hour_start=datetime(2026, 3, 5, hour, tzinfo=UTC), currency="USD", hourly_price=price)
            for hour in range(1 + n % 3))
        if n % 3 == 0 or n % 5 == 1:
            subscription = Subscription.objects.create(
                organization=organization, deployment=deployment, mode="annual", currency="USD",
                term_start=datetime(2026, 3, 10, tzinfo=UTC), term_end=datetime(2027, 3, 10, tzinfo=UTC),
                annual_price=Decimal("1340.00"))
            terms = {"organization": organization, "subscription": subscription, "deployment": deployment,
                     "spec_id": "basic-1k", "currency": "USD", "term_start": subscription.term_start,
                     "term_end": subscription.term_end, "created_at": datetime(2026, 3, 10, tzinfo=UTC)}
            if n % 3 == 0:
                AnnualCharge.objects.create(kind=ChargeKind.TERM, amount=Decimal("1340.00"), **terms)
            if n % 5 == 1:
                event = record_event(deployment, "running", datetime(2026, 3, 20, tzinfo=UTC))
                credit = Decimal("-2000.00") if n % 3 else Decimal("-100.00")
                AnnualCharge.objects.create(kind=ChargeKind.PRORATION, amount=credit, previous_spec_id="basic-5k",
                                            effective_at=event.created_at, source_event=event,
                                            **terms | {"created_at": event.created_at})
        organizations.append(organization)
    return organizations


def invoice_snapshot() -> tuple:
    """What the invoice runs wrote, by invoice number (ids are random)."""
    number = dict(Invoice.objects.values_list("id", "number"))
    invoices = sorted(
        (i.number, i.organization_id, i.account.legal_name, i.subtotal, i.vat_rate, i.vat_amount, i.vat_note, i.total,
         [(line.position, line.description, line.quantity, line.unit, line.unit_price, line.amount,
           line.deployment_id) for line in i.lines.all()])
        for i in Invoice.objects.select_related("account").prefetch_related("lines"))
    charges = sorted((c.organization_id, c.kind, c.amount, number.get(c.invoice_id), number.get(c.source_invoice_id))
                     for c in AnnualCharge.objects.all())
    audits = sorted((e.organization_id, e.target_label, json.dumps(e.changes, sort_keys=True))
                    for e in AuditEvent.objects.filter(action="invoice.issue"))
    counters = sorted(InvoiceCounter.objects.values_list("site", "year", "last_number"))
    return invoices, charges, audits, counters, BillingAccount.objects.count()


@contextmanager
def crash_on_insert(table: str, when: str) -> Iterator[None]:
    """Makes PostgreSQL fail every insert into ``table`` whose row matches ``when`` (SQL over ``NEW``): a crash
    in the middle of a batch, from the database itself, so everything the batch wrote before must roll back."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE FUNCTION test_crash() RETURNS trigger LANGUAGE plpgsql AS "
                       "$$ BEGIN RAISE EXCEPTION 'crash injected by the test'; END $$")
        cursor.execute(f"CREATE TRIGGER test_crash BEFORE INSERT ON {table} FOR EACH ROW WHEN ({when}) "  # noqa: S608
                       "EXECUTE FUNCTION test_crash()")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TRIGGER test_crash ON {table}")
            cursor.execute("DROP FUNCTION test_crash()")


def queries_of(call) -> int:
    """How many statements ``call`` sends, in a transaction rolled back after (so it can be measured again)."""
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        call()
        transaction.set_rollback(True)
    return len(queries)


def test_invoice_run_sends_as_many_queries_for_50_organizations_as_for_5():
    def run() -> None:
        assert invoices_generate_for_month(period_start=MARCH) == Organization.objects.count()

    organizations_to_invoice(5)
    with time_machine.travel(AFTER_MARCH, tick=False):
        few = queries_of(run)
        organizations_to_invoice(45)
        many = queries_of(run)
        assert many == few
        invoices_generate_for_month(period_start=MARCH)
        assert queries_of(run) < few  # a rerun finds every invoice and writes nothing


def test_invoice_run_crashing_midway_then_rerun_writes_what_one_run_writes():
    organizations = organizations_to_invoice(8)
    fifth = sorted(o.pk for o in organizations)[4]
    with time_machine.travel(AFTER_MARCH, tick=False):
        with transaction.atomic():
            assert invoices_generate_for_month(period_start=MARCH) == 8  # one batch, uninterrupted
            uninterrupted = invoice_snapshot()
            transaction.set_rollback(True)
        # Batches of three: the second dies at its last write (the fifth organization's audit event), after its
        # invoices, lines, numbers and charges were written.
        with crash_on_insert("projects_auditevent", f"NEW.action = 'invoice.issue' AND "
                                                    f"NEW.organization_id = '{fifth}'"):
            with pytest.raises(DatabaseError, match="crash injected"):
                invoices_generate_for_month(period_start=MARCH, batch_size=3)
        assert Invoice.objects.count() == 3 and InvoiceCounter.objects.get().last_number == 3
        assert AnnualCharge.objects.filter(invoice__isnull=False).exclude(
            invoice__in=Invoice.objects.all()).count() == 0
        assert invoices_generate_for_month(period_start=MARCH, batch_size=3) == 8
        assert invoice_snapshot() == uninterrupted
        assert invoices_generate_for_month(period_start=MARCH, batch_size=3) == 8  # a rerun is a no-op
        assert invoice_snapshot() == uninterrupted
    invoices, charges, *_ = uninterrupted
    assert [number for number, *_ in invoices] == [f"MQ-GLOBAL-2026-{n:06d}" for n in range(1, 9)]
    assert any(kind == ChargeKind.CARRIED_CREDIT for _, kind, *_ in charges)  # the mix covers carried credits


def scaled_annual_deployments(count: int) -> list[Deployment]:
    """``count`` deployments on annual plans, each scaled twice in its term (up, then down): charged in order,
    the second from the spec the first paid for."""
    deployments = []
    for n in range(count):
        deployment = annual_deployment("pro-1k")
        up = datetime(2026, 4, 1 + n % 20, 12, tzinfo=UTC)
        scale(deployment, "pro-10k" if n % 2 else "pro-5k", up)
        scale(deployment, "pro-5k" if n % 2 else "pro-1k", up + timedelta(days=3, seconds=n))
        deployments.append(deployment)
    return deployments


RUN_AT = datetime(2026, 5, 1, tzinfo=UTC)


def proration_snapshot() -> tuple:
    charges = sorted((c.deployment_id, c.effective_at, c.previous_spec_id, c.spec_id, c.amount, c.source_event_id)
                     for c in AnnualCharge.objects.filter(kind=ChargeKind.PRORATION))
    prices = sorted(Subscription.objects.values_list("deployment_id", "annual_price"))
    audits = sorted((e.organization_id, e.target_id, json.dumps(e.changes, sort_keys=True))
                    for e in AuditEvent.objects.filter(action="subscription.prorate"))
    return charges, prices, audits


def test_proration_run_sends_as_many_queries_for_50_scales_as_for_5():
    def run() -> None:
        assert subscriptions_prorate_scales(now=RUN_AT) == 2 * Deployment.objects.count()

    scaled_annual_deployments(3)  # two scales each: 6
    few = queries_of(run)
    scaled_annual_deployments(22)  # 50
    assert queries_of(run) == few


def test_proration_run_crashing_midway_then_rerun_charges_what_one_run_charges():
    deployments = scaled_annual_deployments(4)  # 8 scales
    fourth = sorted(d.pk for d in deployments)[3]
    with transaction.atomic():
        assert subscriptions_prorate_scales(now=RUN_AT) == 8
        uninterrupted = proration_snapshot()
        transaction.set_rollback(True)
    # Batches of three scales: the third batch holds the last deployment's two scales and dies at its audit.
    with crash_on_insert("projects_auditevent", f"NEW.action = 'subscription.prorate' AND "
                                                f"NEW.target_id = '{fourth}'"):
        with pytest.raises(DatabaseError, match="crash injected"):
            subscriptions_prorate_scales(now=RUN_AT, batch_size=3)
    assert AnnualCharge.objects.filter(kind=ChargeKind.PRORATION).count() == 6
    assert subscriptions_prorate_scales(now=RUN_AT, batch_size=3) == 2
    assert proration_snapshot() == uninterrupted
    assert subscriptions_prorate_scales(now=RUN_AT, batch_size=3) == 0
    assert proration_snapshot() == uninterrupted
    charges, prices, _ = uninterrupted
    # Each second scale is charged from the spec the first one paid for, and the subscription's price follows.
    assert [previous for _, _, previous, *_ in charges[0::2]] == ["pro-1k"] * 4
    assert all(previous in ("pro-5k", "pro-10k") for _, _, previous, *_ in charges[1::2])
    assert {price for _, price in prices} == {Decimal("8191.00"), Decimal("4468.00")}
