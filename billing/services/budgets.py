"""Budgets: their writes and the evaluation that notifies crossed thresholds."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from alerts import facade as alerts_facade
from billing import money, periods, selectors
from billing.models import (
    Budget,
    BudgetCrossing,
)
from controlplane import errors
from controlplane.db import lock_row
from projects.audit import audit_record
from projects.models import Organization, Project
from projects.roles import Perm
from projects.tenancy import Principal

# --- budgets ----------------------------------------------------------------------------------------
BUDGET_THRESHOLDS = (50, 80, 100)
BUDGET_SEVERITY = {50: "info", 80: "warning", 100: "critical"}
BUDGET_EVENT = "budget.threshold_crossed"
#: The detail of a budget's one-field errors (the field's own message is in the problem's ``errors``).
INVALID_FIELDS = "The request has invalid fields."


def _budget_amount(amount: Decimal, currency: str) -> Decimal:
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
        raise errors.field_invalid("amount", "Must be greater than 0.", detail=INVALID_FIELDS)
    if money.quantize(amount, currency) != amount:
        raise errors.field_invalid("amount", f"At most {money.minor_unit(currency)} decimal places for {currency}.",
                                   detail=INVALID_FIELDS)
    return amount


def _budget_channels(principal: Principal, channel_ids: list[str]) -> list:
    channels = list(alerts_facade.channel_list(principal=principal).filter(pk__in=channel_ids))
    missing = sorted(set(channel_ids) - {c.id for c in channels})
    if missing:
        raise errors.field_invalid("channels", f"No alert channel(s) {', '.join(missing)}.", detail=INVALID_FIELDS)
    return channels


@transaction.atomic
def budget_create(*, principal: Principal, amount: Decimal, project: str | None = None,
                  channels: list[str] | None = None, enabled: bool = True) -> Budget:
    """A monthly budget for the organization (``project`` None) or one project: one of each at most."""
    principal.require(Perm.BILLING_MANAGE)
    organization = principal.organization
    project_row = None
    if project is not None:
        project_row = Project.objects.filter(organization=organization, pk=project).first()
        if project_row is None or not principal.can_see_project(project_row.id):
            raise errors.field_invalid("project", f"No project {project}.", detail=INVALID_FIELDS)
    elif principal.is_project_limited:
        raise errors.PermissionDenied("A member limited to projects sets budgets of those projects only.")
    amount = _budget_amount(amount, organization.currency)
    channel_rows = _budget_channels(principal, channels or [])
    # Locks the organization row: two concurrent creates of the same scope queue here instead of one
    # failing on the unique constraint with a 500.
    lock_row(Organization, organization.pk)
    if Budget.objects.filter(organization=organization, project=project_row).exists():
        scope = f"project {project_row.id}" if project_row else "the organization"
        raise errors.Conflict(f"There is already a budget for {scope}; change that one.")
    budget = Budget(organization=organization, project=project_row, amount=amount, enabled=enabled)
    budget.full_clean()
    budget.save()
    budget.channels.set(channel_rows)
    audit_record(principal=principal, action="budget.create", target=budget,
                 changes={"project": project, "amount": str(amount), "currency": organization.currency,
                          "channels": [c.id for c in channel_rows], "enabled": enabled})
    return budget


@transaction.atomic
def budget_update(*, principal: Principal, budget: Budget, amount: Decimal | None = None,
                  channels: list[str] | None = None, enabled: bool | None = None) -> Budget:
    principal.require(Perm.BILLING_MANAGE)
    budget = lock_row(Budget.objects.select_related("organization"), budget.pk, organization=principal.organization)
    changes: dict[str, Any] = {}
    if amount is not None:
        amount = _budget_amount(amount, budget.organization.currency)
        if amount != budget.amount:
            changes["amount"] = [str(budget.amount), str(amount)]
            budget.amount = amount
    if enabled is not None and enabled != budget.enabled:
        changes["enabled"] = [budget.enabled, enabled]
        budget.enabled = enabled
    if channels is not None:
        rows = _budget_channels(principal, channels)
        before = sorted(budget.channels.values_list("id", flat=True))
        if sorted(c.id for c in rows) != before:
            changes["channels"] = [before, sorted(c.id for c in rows)]
            budget.channels.set(rows)
    budget.full_clean()
    budget.save()
    if "amount" in changes:
        # A threshold no longer reached under the new amount may notify again when it is reached; those
        # still reached stay recorded (no second notice for them this month).
        now = timezone.now()
        spent = selectors.budget_spent(budget=budget, now=now)
        budget.crossings.filter(month=periods.month_start_of(now).date()).exclude(
            threshold__in=_thresholds_reached(spent, budget.amount)).delete()
    if changes:
        audit_record(principal=principal, action="budget.update", target=budget, changes=changes)
    return budget


@transaction.atomic
def budget_delete(*, principal: Principal, budget: Budget) -> None:
    principal.require(Perm.BILLING_MANAGE)
    audit_record(principal=principal, action="budget.delete", target=budget,
                 changes={"project": budget.project_id, "amount": str(budget.amount)})
    budget.delete()


def _thresholds_reached(spent: Decimal, amount: Decimal) -> list[int]:
    return [t for t in BUDGET_THRESHOLDS if spent * 100 >= amount * t]


def budgets_evaluate(*, now: datetime | None = None) -> int:
    """Records the thresholds each enabled budget has reached this month and notifies the new ones; returns
    how many notices went out. Reruns and concurrent runs notify nothing twice: the crossing row is unique
    per budget, month and threshold, and only the run that inserts it notifies. Several thresholds reached
    at once (a budget set below the month's spend, a big annual charge) send one notice, for the highest."""
    now = now or timezone.now()
    month = periods.month_start_of(now).date()
    sent = 0
    for budget_id in Budget.objects.filter(enabled=True).values_list("id", flat=True):
        budget = Budget.objects.select_related("organization", "project").filter(pk=budget_id, enabled=True).first()
        if budget is None:
            continue
        spent = selectors.budget_spent(budget=budget, now=now)
        reached = _thresholds_reached(spent, budget.amount)
        if not reached:
            continue
        with transaction.atomic():
            new = []
            for threshold in reached:
                crossing, created = BudgetCrossing.objects.get_or_create(
                    budget=budget, month=month, threshold=threshold,
                    defaults={"spent": spent, "amount": budget.amount})
                if created:
                    new.append(crossing)
            if not new:
                continue
            top = max(new, key=lambda c: c.threshold)
            top.notified = True
            top.save(update_fields=["notified"])
            _budget_notify(budget=budget, threshold=top.threshold, spent=spent, now=now)
            sent += 1
    return sent


def _budget_notify(*, budget: Budget, threshold: int, spent: Decimal, now: datetime) -> None:
    currency = budget.organization.currency
    month = periods.month_start_of(now)
    scope = f"project {budget.project.name}" if budget.project else f"organization {budget.organization.name}"
    base = settings.PUBLIC_BASE_URL.rstrip("/")
    title = f"Budget {threshold}% reached: {spent} of {budget.amount} {currency} ({scope}, {month:%B %Y})"
    summary = (f"The {month:%B %Y} spend of {scope} is {spent} {currency}, {threshold}% or more of its monthly "
               f"budget of {budget.amount} {currency} (before VAT).")
    details = {
        "budget": {"id": budget.id, "project": budget.project_id, "amount": str(budget.amount),
                   "currency": currency},
        "threshold": threshold,
        "spent": str(spent),
        "amount": str(budget.amount),
        "currency": currency,
        "month": f"{month:%Y-%m}",
        "links": {"budget": f"{base}/api/v1/budgets/{budget.id}", "console": base + reverse("console:billing")},
    }
    facts = [("Budget", f"{budget.amount} {currency} per month"), ("Spent", f"{spent} {currency}"),
             ("Threshold", f"{threshold}%"), ("Scope", scope), ("Month", f"{month:%Y-%m}")]
    kwargs = {"organization": budget.organization, "event_type": BUDGET_EVENT, "title": title, "summary": summary,
              "details": details, "severity": BUDGET_SEVERITY[threshold], "facts": facts, "now": now,
              "dedup_key": f"mqcloud-budget-{budget.id}-{month:%Y-%m}-{threshold}"}
    channels = [c for c in budget.channels.all() if c.enabled]
    if channels:
        alerts_facade.organization_notice_send(channels=channels, **kwargs)
    else:
        alerts_facade.organization_notice_email(recipients=selectors.budget_notice_recipients(budget=budget), **kwargs)
