"""Billing beat jobs and workers: thin, idempotent, each calling one service."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from billing import selectors, stripe_gateway
from billing.services import budgets, closing, dunning, payments, vat


@shared_task(name="billing.tasks.usage_meter_recent")
def usage_meter_recent(hours: int = 3) -> int:
    return closing.billing_hour_close(hours=hours)


@shared_task(name="billing.tasks.budgets_evaluate", ignore_result=True)
def budgets_evaluate() -> int:
    return budgets.budgets_evaluate(now=timezone.now())


@shared_task(name="billing.tasks.invoices_generate_previous_month")
def invoices_generate_previous_month() -> int:
    return closing.month_close()


# Stripe outages: retry with exponential backoff (up to an hour apart); the attempt keeps its idempotency
# key, so a retry never charges twice. The beat job re-drives attempts still pending after that.
@shared_task(name="billing.tasks.invoice_collect", autoretry_for=(stripe_gateway.StripeUnavailable,),
             retry_backoff=30, retry_backoff_max=3600, retry_jitter=True, max_retries=8)
def invoice_collect(invoice_id: str, force: bool = False) -> str | None:
    return closing.invoice_collect_and_warn(invoice_id=invoice_id, force=force)


@shared_task(name="billing.tasks.invoices_collect_due")
def invoices_collect_due() -> int:
    invoice_ids = payments.invoices_collect_due()
    for invoice_id in invoice_ids:
        invoice_collect.delay(invoice_id)
    return len(invoice_ids)


@shared_task(name="billing.tasks.dunning_run")
def dunning_run() -> dict[str, int]:
    return dunning.dunning_run()


@shared_task(name="billing.tasks.vat_number_check", bind=True, acks_late=True, ignore_result=True)
def vat_number_check(self, account_id: str, force: bool = False) -> str:
    outcome = vat.vat_number_check(account_id=account_id, force=force)
    schedule = settings.VIES_RETRY_SCHEDULE_S
    if outcome == vat.VatCheckOutcome.UNAVAILABLE and self.request.retries < len(schedule):
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
