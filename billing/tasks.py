"""Billing beat jobs: thin, idempotent, each calling one service."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from billing import services


@shared_task(name="billing.tasks.usage_meter_recent")
def usage_meter_recent(hours: int = 3) -> int:
    # Terms that ended must be renewed or returned to hourly before their hours are metered.
    services.subscriptions_roll_over()
    # Scales inside annual terms are charged from the committed scale events, never twice.
    services.subscriptions_prorate_scales()
    return services.usage_meter_recent(hours=hours)


@shared_task(name="billing.tasks.invoices_generate_previous_month")
def invoices_generate_previous_month() -> int:
    today = timezone.now().date()
    last_month_end = today.replace(day=1) - timedelta(days=1)
    # Meter the month's last hours again first: late events must reach the invoice.
    services.usage_meter_recent(hours=6)
    services.subscriptions_prorate_scales()
    return services.invoices_generate_for_month(period_start=last_month_end.replace(day=1))
