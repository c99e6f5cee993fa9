"""Every write to billing data: keyword-only, atomic, audited. Reruns of metering and invoicing are no-ops.

One module per concern. The names below are re-exported while callers move to the modules (HackSoft's
"re-export during the move"); inside billing, import the modules themselves.
"""

from __future__ import annotations

from billing.services.accounts import (
    billing_account_operator_update,
    billing_account_update,
    vat_number_normalize,
    vat_number_recheck_request,
)
from billing.services.budgets import (
    BUDGET_EVENT,
    BUDGET_SEVERITY,
    BUDGET_THRESHOLDS,
    budget_create,
    budget_delete,
    budget_update,
    budgets_evaluate,
)
from billing.services.cards import (
    payment_method_setup_complete,
    payment_method_setup_start,
    stripe_customer_ensure,
)
from billing.services.dunning import (
    dunning_clear_if_settled,
    dunning_run,
    dunning_suspend,
    dunning_warn,
)
from billing.services.invoicing import (
    invoice_generate,
    invoices_generate_for_month,
)
from billing.services.payments import (  # _payment_begin: tests call it as services._payment_begin
    _payment_begin,
    invoice_collect,
    invoices_collect_due,
    payment_record_outcome,
)
from billing.services.subscriptions import (
    PRORATION_LOOKBACK,
    subscription_switch_to_annual,
    subscriptions_prorate_scales,
    subscriptions_roll_over,
)
from billing.services.usage import (
    METER_CHUNK_HOURS,
    usage_amount,
    usage_meter_hour,
    usage_meter_range,
    usage_meter_recent,
)
from billing.services.vat import (
    VatCheckOutcome,
    vat_number_check,
    vat_numbers_check_now,
)
from billing.services.webhooks import (
    stripe_event_receive,
)

__all__ = [
    "BUDGET_EVENT",
    "BUDGET_SEVERITY",
    "BUDGET_THRESHOLDS",
    "METER_CHUNK_HOURS",
    "PRORATION_LOOKBACK",
    "VatCheckOutcome",
    "_payment_begin",
    "billing_account_operator_update",
    "billing_account_update",
    "budget_create",
    "budget_delete",
    "budget_update",
    "budgets_evaluate",
    "dunning_clear_if_settled",
    "dunning_run",
    "dunning_suspend",
    "dunning_warn",
    "invoice_collect",
    "invoice_generate",
    "invoices_collect_due",
    "invoices_generate_for_month",
    "payment_method_setup_complete",
    "payment_method_setup_start",
    "payment_record_outcome",
    "stripe_customer_ensure",
    "stripe_event_receive",
    "subscription_switch_to_annual",
    "subscriptions_prorate_scales",
    "subscriptions_roll_over",
    "usage_amount",
    "usage_meter_hour",
    "usage_meter_range",
    "usage_meter_recent",
    "vat_number_check",
    "vat_number_normalize",
    "vat_number_recheck_request",
    "vat_numbers_check_now",
]
