"""Closing periods: what the hourly beat job and the month's first day run, in the order the money needs.

Each is one service a task calls (``billing.tasks``): the task stays a thin, idempotent trigger and the order
of the steps (and why) lives here, where it can be read and tested without Celery.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from billing import periods
from billing.models import PaymentStatus
from billing.services import budgets, dunning, invoicing, payments, subscriptions, usage, vat


def billing_hour_close(*, hours: int = 3, now: datetime | None = None) -> int:
    """The hourly job: renews or ends annual terms, prorates scales, meters the last ``hours`` hours, evaluates
    budgets. Returns how many usage rows were written. Idempotent, as each step is."""
    # Terms that ended must be renewed or returned to hourly before their hours are metered.
    subscriptions.subscriptions_roll_over()
    # Scales inside annual terms are charged from the committed scale events, never twice.
    subscriptions.subscriptions_prorate_scales()
    now = now or timezone.now()
    metered = usage.usage_meter_recent(hours=hours, now=now)
    # Budgets read the usage just metered (each hour is committed already: a budget error undoes nothing).
    # In the first hours of a month this run metered the previous month's last hours: that month's budgets
    # are evaluated too, or spend crossing a threshold at the very end of a month would never be noticed
    # (the new month's spend is still zero). Those notices are dated at that month's last instant.
    earliest = periods.hour_floor(now) - timedelta(hours=hours)
    if earliest < periods.month_start_of(now):
        budgets.budgets_evaluate(now=periods.month_start_of(now) - timedelta(microseconds=1))
    budgets.budgets_evaluate(now=now)
    return metered


def month_close(*, now: datetime | None = None) -> int:
    """The month's first day: invoices the previous month for every account. Returns how many invoices were
    made (a rerun makes none: one invoice per account and period)."""
    today = (now or timezone.now()).date()
    period_start = periods.month_start_before(today)
    # The month's usage rows first: hours the hourly job missed and late events must reach the invoice (and the
    # budgets and the console, which read the same rows). The check sums the rows as invoices group them, and
    # the invoices take those sums: the month's rows are read once.
    month_usage = usage.usage_month_reconcile_and_sum(period_start=period_start)
    # A number VIES confirms now still gets the reverse charge on this invoice.
    vat.vat_numbers_check_now()
    subscriptions.subscriptions_prorate_scales()
    return invoicing.invoices_generate_for_month(period_start=period_start, usage=month_usage)


def invoice_collect_and_warn(*, invoice_id: str, force: bool = False) -> str | None:
    """One collection attempt of an invoice (``payments.invoice_collect``); a failed payment mails the dunning
    warning at once (once per unpaid episode). Returns the attempt's status, None when nothing was attempted."""
    payment = payments.invoice_collect(invoice_id=invoice_id, force=force)
    if payment is None:
        return None
    if payment.status == PaymentStatus.FAILED:
        dunning.dunning_warn(account_id=payment.invoice.account_id)
    return payment.status
