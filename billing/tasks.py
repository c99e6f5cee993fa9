"""Billing beat jobs and workers: thin, idempotent, each calling one service."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from billing import periods, selectors, services, stripe_gateway
from billing.models import PaymentStatus


@shared_task(name="billing.tasks.usage_meter_recent")
def usage_meter_recent(hours: int = 3) -> int:
    # Terms that ended must be renewed or returned to hourly before their hours are metered.
    services.subscriptions_roll_over()
    # Scales inside annual terms are charged from the committed scale events, never twice.
    services.subscriptions_prorate_scales()
    now = timezone.now()
    metered = services.usage_meter_recent(hours=hours, now=now)
    # Budgets read the usage just metered (each hour is committed already: a budget error undoes nothing).
    # In the first hours of a month this run metered the previous month's last hours: that month's budgets
    # are evaluated too, or spend crossing a threshold at the very end of a month would never be noticed
    # (the new month's spend is still zero). Those notices are dated at that month's last instant.
    earliest = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours)
    if earliest < periods.month_start_of(now):
        services.budgets_evaluate(now=periods.month_start_of(now) - timedelta(microseconds=1))
    services.budgets_evaluate(now=now)
    return metered


@shared_task(name="billing.tasks.budgets_evaluate", ignore_result=True)
def budgets_evaluate() -> int:
    return services.budgets_evaluate(now=timezone.now())


@shared_task(name="billing.tasks.invoices_generate_previous_month")
def invoices_generate_previous_month() -> int:
    today = timezone.now().date()
    last_month_end = today.replace(day=1) - timedelta(days=1)
    # Meter the month's last hours again first: late events must reach the invoice.
    services.usage_meter_recent(hours=6)
    # A number VIES confirms now still gets the reverse charge on this invoice.
    services.vat_numbers_check_now()
    services.subscriptions_prorate_scales()
    return services.invoices_generate_for_month(period_start=last_month_end.replace(day=1))


# Stripe outages: retry with exponential backoff (up to an hour apart); the attempt keeps its idempotency
# key, so a retry never charges twice. The beat job re-drives attempts still pending after that.
@shared_task(name="billing.tasks.invoice_collect", autoretry_for=(stripe_gateway.StripeUnavailable,),
             retry_backoff=30, retry_backoff_max=3600, retry_jitter=True, max_retries=8)
def invoice_collect(invoice_id: str, force: bool = False) -> str | None:
    payment = services.invoice_collect(invoice_id=invoice_id, force=force)
    if payment is None:
        return None
    if payment.status == PaymentStatus.FAILED:
        services.dunning_warn(account_id=payment.invoice.account_id)
    return payment.status


@shared_task(name="billing.tasks.invoices_collect_due")
def invoices_collect_due() -> int:
    invoice_ids = services.invoices_collect_due()
    for invoice_id in invoice_ids:
        invoice_collect.delay(invoice_id)
    return len(invoice_ids)


@shared_task(name="billing.tasks.dunning_run")
def dunning_run() -> dict[str, int]:
    return services.dunning_run()
@shared_task(name="billing.tasks.vat_number_check", bind=True, acks_late=True, ignore_result=True)
def vat_number_check(self, account_id: str, force: bool = False) -> str:
    outcome = services.vat_number_check(account_id=account_id, force=force)
    schedule = settings.VIES_RETRY_SCHEDULE_S
    if outcome == services.VatCheckOutcome.UNAVAILABLE and self.request.retries < len(schedule):
        # VIES or the member state is down or busy: back off; after the last retry the hourly recheck
        # (vat_numbers_recheck) keeps trying, so a lost task loses nothing either.
        raise self.retry(countdown=schedule[self.request.retries], max_retries=len(schedule))
    return outcome


@shared_task(name="billing.tasks.vat_numbers_recheck", ignore_result=True)
def vat_numbers_recheck() -> int:
    due = timezone.now() - timedelta(seconds=settings.VIES_RECHECK_AFTER_S)
    account_ids = selectors.vat_numbers_to_check(attempted_before=due)
    for account_id in account_ids:
        vat_number_check.delay(account_id)
    return len(account_ids)
