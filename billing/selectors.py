"""Reads of billing data. Organization (via the principal) first."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, F, Q, QuerySet, Sum

from billing import money, periods
from billing.models import (
    AnnualCharge,
    BillingAccount,
    Budget,
    Invoice,
    InvoiceStatus,
    Payment,
    Subscription,
    UsageRate,
    UsageRecord,
    VatStatus,
)
from controlplane import errors
from controlplane.selectors import task_heartbeat_at
from deployments.models import Deployment
from projects.models import Membership
from projects.roles import Perm, Role
from projects.tenancy import Principal


def billing_account_get(*, principal: Principal) -> BillingAccount:
    """The organization's billing account, created on first read."""
    account, _ = BillingAccount.objects.get_or_create(organization=principal.organization)
    return account


def invoice_list(*, principal: Principal) -> QuerySet[Invoice]:
    """The organization's invoices. They belong to no project, so a project limit cannot narrow them (usage and
    budgets, which have a project, are narrowed to the principal's projects): a reader needs a billing role,
    limited or not, checked here too so no future caller (a page, a banner) can skip it."""
    principal.require(Perm.BILLING_READ)
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
    metered = sum((amount(r["total"], r["hourly_price"]) for r in month), Decimal("0.00"))
    charges = list(annual_charges_pending(principal=principal))
    charges_total = sum((c.amount for c in charges), Decimal("0.00"))
    # Credits (downgrades) beyond the charges are carried forward, never paid out: an invoice is never negative.
    estimate = max(metered + charges_total, Decimal("0.00"))
    return {"since": since, "until": until, "currency": currency, "deployments": list(deployments.values()),
            "current_month_estimate": estimate, "metered_total": metered, "charges": charges,
            "charges_total": charges_total, "credit_carried": estimate - metered - charges_total}


def annual_charges_pending(*, principal: Principal) -> QuerySet[AnnualCharge]:
    """Annual terms, prorated scales and credits not invoiced yet: the next invoice takes them in."""
    charges = AnnualCharge.objects.filter(organization=principal.organization, invoice__isnull=True)
    return (principal.limit_to_projects(charges, "deployment__project_id")
            .select_related("deployment", "source_invoice").order_by("created_at", "id"))


def billing_suspension_reason(*, organization_id: str) -> str | None:
    """Why the organization may not create or start deployments (unpaid invoices past the grace period)."""
    suspended = BillingAccount.objects.filter(organization_id=organization_id, suspended_at__isnull=False).exists()
    if not suspended:
        return None
    return ("Deployments are stopped because an invoice is unpaid past the grace period; update the card on the "
            "billing page, and start them again once it is paid.")


def payments_of(*, principal: Principal, invoice: Invoice) -> QuerySet:
    return Payment.objects.filter(organization=principal.organization, invoice=invoice).order_by("attempt")


def invoices_failed_unpaid(*, account: BillingAccount) -> QuerySet[Invoice]:
    return Invoice.objects.filter(account=account, status=InvoiceStatus.OPEN, payment_failed_at__isnull=False)


def dunning_stop_date(account: BillingAccount) -> datetime | None:
    """While a payment has failed: when running deployments will be stopped if it stays unpaid."""
    if account.payment_failed_at is None:
        return None
    return account.payment_failed_at + timedelta(days=settings.BILLING_DUNNING_GRACE_DAYS)


# --- VAT number checks ------------------------------------------------------------------------------
def vat_numbers_to_check(*, attempted_before: datetime | None = None, limit: int = 1000) -> list[str]:
    """Ids of accounts whose VAT number VIES has not decided yet (system read for the recheck jobs); the
    longest-waiting first. GB numbers are not in VIES and stay ``unchecked``: they are left out."""
    if not settings.VIES_URL:
        return []
    qs = (BillingAccount.objects.filter(vat_status=VatStatus.UNCHECKED).exclude(vat_number="")
          .exclude(vat_number__startswith="GB"))
    if attempted_before is not None:
        qs = qs.filter(Q(vat_check_attempted_at__isnull=True) | Q(vat_check_attempted_at__lt=attempted_before))
    return list(qs.order_by(F("vat_check_attempted_at").asc(nulls_first=True), "id")
                .values_list("id", flat=True)[:limit])


# --- budgets ----------------------------------------------------------------------------------------
def budget_list(*, principal: Principal) -> QuerySet[Budget]:
    """A member limited to projects sees those projects' budgets only (not the organization's)."""
    qs = Budget.objects.filter(organization=principal.organization).select_related("organization")
    return principal.limit_to_projects(qs).prefetch_related("channels").order_by("created_at", "id")


def spend_by_project_for_month(*, organization_id: str, currency: str,
                               month_start: datetime) -> dict[str | None, Decimal]:
    """What the month costs before VAT, as invoicing counts it (metered usage per deployment and spec, one
    rounding each as invoice lines, plus annual terms charged in the month), per project id and, under
    ``None``, for the whole organization: two queries however many projects."""
    month_end = periods.month_start_after(month_start)
    usage = (UsageRecord.objects.filter(organization_id=organization_id, hour_start__gte=month_start,
                                        hour_start__lt=month_end)
             .values("deployment_id", "deployment__project_id", "spec_id", "hourly_price")
             .annotate(seconds=Sum("seconds")).order_by())
    charges = AnnualCharge.objects.filter(organization_id=organization_id, created_at__gte=month_start,
                                          created_at__lt=month_end).values_list("deployment__project_id", "amount")
    totals: dict[str | None, Decimal] = defaultdict(lambda: Decimal("0.00"))
    amounts = [(row["deployment__project_id"], money.usage_amount(seconds=row["seconds"],
                                                                   hourly_price=row["hourly_price"],
                                                                   currency=currency)) for row in usage]
    for project_id, amount in [*amounts, *charges]:
        totals[project_id] += amount
        totals[None] += amount
    return {key: money.quantize(total, currency) for key, total in totals.items()}


def spend_for_month(*, organization_id: str, currency: str, month_start: datetime,
                    project_id: str | None = None) -> Decimal:
    """``spend_by_project_for_month`` of one project, or of the whole organization without one."""
    spend = spend_by_project_for_month(organization_id=organization_id, currency=currency, month_start=month_start)
    return spend.get(project_id, money.quantize(Decimal("0.00"), currency))


def budget_spent(*, budget: Budget, now: datetime) -> Decimal:
    """The budget's spend in the month of ``now``."""
    return budgets_spent(budgets=[budget], now=now)[budget.pk]


def budgets_spent(*, budgets: Iterable[Budget], now: datetime) -> dict[str, Decimal]:
    """Each budget's spend in the month of ``now`` (by budget id), asking once per organization."""
    month_start, spent = periods.month_start_of(now), {}
    by_organization: dict[str, list[Budget]] = defaultdict(list)
    for budget in budgets:
        by_organization[budget.organization_id].append(budget)
    for organization_id, scoped in by_organization.items():
        currency = scoped[0].organization.currency
        spend = spend_by_project_for_month(organization_id=organization_id, currency=currency,
                                           month_start=month_start)
        for budget in scoped:
            spent[budget.pk] = spend.get(budget.project_id, money.quantize(Decimal("0.00"), currency))
    return spent


def budget_notice_recipients(*, budget: Budget) -> list[str]:
    """Who hears of a budget without channels: the owners and billing members who can see its scope."""
    members = (Membership.objects.filter(organization_id=budget.organization_id, role__in=[Role.OWNER, Role.BILLING],
                                         user__is_active=True)
               .select_related("user").prefetch_related("projects"))
    emails = []
    for member in members:
        limit = member.project_limit()
        if limit is not None and (budget.project_id is None or budget.project_id not in limit):
            continue
        if member.user.email:
            emails.append(member.user.email)
    return sorted(set(emails))


def organization_ids_with_failed_payment(*, organization_ids: list[str] | None = None) -> dict[str, datetime]:
    """Organizations whose last payment failed (system read; alerts asks through ``billing.receivers``): id → when.

    The condition holds while ``payment_failed_at`` is set; a later successful payment clears it.
    """
    qs = BillingAccount.objects.filter(payment_failed_at__isnull=False)
    if organization_ids is not None:
        qs = qs.filter(organization_id__in=organization_ids)
    return dict(qs.values_list("organization_id", "payment_failed_at"))


# --- the fleet, for the ops overview (system reads: staff only) -------------------------------------------
def invoice_status_counts() -> dict[str, int]:
    """How many invoices are in each status, over every organization (every status named)."""
    counts = dict.fromkeys(InvoiceStatus.values, 0)
    for status, n in Invoice.objects.values_list("status").annotate(n=Count("id")):
        counts[status] = n
    return counts


METER_TASK = "billing.tasks.usage_meter_recent"


def metering_lag_seconds(*, now: datetime) -> float | None:
    """Seconds since metering (a beat job at five past every hour) last finished; None if it never has since records
    began. Above about 65 minutes, usage, budgets and the next invoices fall behind what deployments ran."""
    last = task_heartbeat_at(task_name=METER_TASK)
    return None if last is None else max(0.0, (now - last).total_seconds())
