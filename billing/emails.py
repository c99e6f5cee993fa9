"""Mail the billing app sends about payments: to the organization's owners and billing members."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

from billing.models import BillingAccount, Invoice
from projects.models import Membership
from projects.roles import Role


def billing_recipients(account: BillingAccount) -> list[str]:
    return sorted(set(Membership.objects.filter(organization_id=account.organization_id,
                                                role__in=[Role.OWNER, Role.BILLING])
                      .values_list("user__email", flat=True)))


def _send(*, account: BillingAccount, template: str, subject: str, context: dict) -> int:
    to = billing_recipients(account)
    if not to:
        return 0
    context = {"account": account, "organization": account.organization,
               "billing_url": settings.PUBLIC_BASE_URL.rstrip("/") + reverse("console:billing-account"), **context}
    message = EmailMultiAlternatives(subject=subject, body=render_to_string(f"billing/email/{template}.txt", context),
                                     to=to)
    message.attach_alternative(render_to_string(f"billing/email/{template}.html", context), "text/html")
    return message.send()


def send_payment_failed(*, account: BillingAccount, invoices: Sequence[Invoice], stop_on: datetime | None) -> int:
    return _send(account=account, template="payment_failed", context={"invoices": invoices, "stop_on": stop_on},
                 subject=f"Payment failed for {account.organization.name} on mqcloud: action needed")


def send_suspended(*, account: BillingAccount, invoices: Sequence[Invoice], stopped: Sequence[str]) -> int:
    return _send(account=account, template="suspended", context={"invoices": invoices, "stopped": stopped},
                 subject=f"Deployments of {account.organization.name} stopped for an unpaid invoice")


def send_payment_restored(*, account: BillingAccount, was_suspended: bool) -> int:
    return _send(account=account, template="restored", context={"was_suspended": was_suspended},
                 subject=f"Payment received for {account.organization.name} on mqcloud")
