from __future__ import annotations

from datetime import date
from decimal import Decimal

import factory
from django.utils import timezone

from billing.models import BillingAccount, Budget, Invoice, Payment, StripeEvent
from deployments.models import DeploymentEvent
from projects.tests.factories import OrganizationFactory


class BillingAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BillingAccount
        django_get_or_create = ("organization",)

    organization = factory.SubFactory(OrganizationFactory)
    legal_name = factory.Sequence(lambda n: f"Customer {n} GmbH")
    country = "DE"


class InvoiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Invoice

    organization = factory.SubFactory(OrganizationFactory)
    account = factory.SubFactory(BillingAccountFactory, organization=factory.SelfAttribute("..organization"))
    number = factory.Sequence(lambda n: f"MQ-TEST-2026-{n:06d}")
    period_start = date(2026, 1, 1)
    period_end = date(2026, 2, 1)
    currency = "USD"
    subtotal = Decimal("10.00")
    vat_rate = Decimal("19")
    vat_amount = Decimal("1.90")
    total = Decimal("11.90")


class PaymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Payment

    invoice = factory.SubFactory(InvoiceFactory)
    organization = factory.SelfAttribute("invoice.organization")
    attempt = 1
    idempotency_key = factory.LazyAttribute(lambda p: f"pay-{p.invoice.pk}-{p.attempt}")
    amount = factory.SelfAttribute("invoice.total")
    currency = factory.SelfAttribute("invoice.currency")


class StripeEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StripeEvent

    stripe_id = factory.Sequence(lambda n: f"evt_test{n:08d}")
    type = "customer.created"
    created = factory.LazyFunction(timezone.now)
    payload = factory.LazyAttribute(lambda e: {"id": e.stripe_id, "type": e.type, "data": {"object": {}}})


def record_event(deployment, to_status: str, at, spec_id: str | None = None) -> DeploymentEvent:
    return DeploymentEvent.objects.create(organization_id=deployment.organization_id, deployment=deployment,
                                          to_status=to_status, spec_id=spec_id or deployment.spec_id, created_at=at)


class BudgetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Budget

    organization = factory.SubFactory(OrganizationFactory)
    amount = Decimal("100.00")
