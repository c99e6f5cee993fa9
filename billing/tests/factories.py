from __future__ import annotations

from datetime import date
from decimal import Decimal

import factory

from billing.models import BillingAccount, Budget, Invoice
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


def record_event(deployment, to_status: str, at, spec_id: str | None = None) -> DeploymentEvent:
    return DeploymentEvent.objects.create(organization_id=deployment.organization_id, deployment=deployment,
                                          to_status=to_status, spec_id=spec_id or deployment.spec_id, created_at=at)


class BudgetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Budget

    organization = factory.SubFactory(OrganizationFactory)
    amount = Decimal("100.00")
