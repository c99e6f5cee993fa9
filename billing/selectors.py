"""Reads of billing data. Organization (via the principal) first."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from billing.models import BillingAccount, Invoice, Subscription, UsageRate, UsageRecord
from controlplane import errors
from deployments.models import Deployment
from projects.tenancy import Principal


def billing_account_get(*, principal: Principal) -> BillingAccount:
    """The organization's billing account, created on first read."""
    account, _ = BillingAccount.objects.get_or_create(organization=principal.organization)
    return account


def invoice_list(*, principal: Principal) -> QuerySet[Invoice]:
    return Invoice.objects.filter(organization=principal.organization).prefetch_related("lines")


def invoice_get(*, principal: Principal, invoice_id: str) -> Invoice:
    invoice = invoice_list(principal=principal).filter(id=invoice_id).first()
    if invoice is None:
        raise errors.NotFound(f"No invoice {invoice_id}.")
    return invoice


def usage_list(*, principal: Principal, since: datetime, until: datetime) -> QuerySet[UsageRecord]:
    qs = UsageRecord.objects.filter(organization=principal.organization, hour_start__gte=since,
                                    hour_start__lt=until)
    return principal.limit_to_projects(qs, "deployment__project_id").order_by("deployment_id", "hour_start")


def subscription_get(*, principal: Principal, deployment: Deployment) -> Subscription:
    """The deployment's subscription (hourly until switched), created on first read."""
    if deployment.organization_id != principal.organization.pk:
        raise errors.NotFound(f"No deployment {deployment.pk}.")
    subscription, _ = Subscription.objects.get_or_create(
        deployment=deployment, defaults={"organization_id": deployment.organization_id})
    return subscription


def usage_summary(*, principal: Principal, since: datetime, until: datetime, now: datetime) -> dict:
    """Metered usage per deployment between ``since`` and ``until`` and the current month's estimate."""
    from decimal import Decimal

    from django.db.models import Sum

    from billing import money
    from billing.models import AnnualCharge

    currency = principal.organization.currency

    def amount(seconds: int, price: Decimal) -> Decimal:
        return money.quantize(Decimal(seconds) * price / Decimal(3600), currency)

    def hours(seconds: int) -> Decimal:
        return (Decimal(seconds) / Decimal(3600)).quantize(Decimal("0.0001"))

    rows = (usage_list(principal=principal, since=since, until=until)
            .values("deployment_id", "spec_id", "rate", "hourly_price").annotate(total=Sum("seconds"))
            .order_by("deployment_id", "spec_id", "rate", "hourly_price"))
    deployments: dict[str, dict] = {}
    for row in rows:
        entry = deployments.setdefault(row["deployment_id"], {"deployment": row["deployment_id"], "seconds": 0,
                                                              "stopped_seconds": 0, "amount": Decimal("0.00"),
                                                              "specs": []})
        line = amount(row["total"], row["hourly_price"])
        entry["specs"].append({"spec": row["spec_id"], "rate": row["rate"], "seconds": row["total"],
                               "hourly_price": row["hourly_price"], "amount": line})
        # ``seconds``/``hours`` stay the running (billable) time; stopped time is reported beside it.
        entry["stopped_seconds" if row["rate"] == UsageRate.STOPPED else "seconds"] += row["total"]
        entry["amount"] += line
    for entry in deployments.values():
        entry["hours"] = hours(entry["seconds"])
        entry["stopped_hours"] = hours(entry["stopped_seconds"])
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    month = (usage_list(principal=principal, since=month_start, until=now)
             .values("deployment_id", "spec_id", "rate", "hourly_price").annotate(total=Sum("seconds")))
    estimate = sum((amount(r["total"], r["hourly_price"]) for r in month), Decimal("0.00"))
    charges = AnnualCharge.objects.filter(organization=principal.organization, invoice__isnull=True)
    estimate += sum((c.amount for c in principal.limit_to_projects(charges, "deployment__project_id")),
                    Decimal("0.00"))
    # Credits (downgrades) beyond the charges are carried forward, never paid out: an invoice is never negative.
    estimate = max(estimate, Decimal("0.00"))
    return {"since": since, "until": until, "currency": currency, "deployments": list(deployments.values()),
            "current_month_estimate": estimate}
