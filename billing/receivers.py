"""What billing answers when an app below it asks something; ``BillingConfig.ready`` registers these on the hooks
they answer (``deployments.hooks``, ``alerts.hooks``)."""

from __future__ import annotations

from datetime import datetime

from billing.selectors import billing_suspension_reason, organization_ids_with_failed_payment
from billing.services.subscriptions import subscription_change_quote
from projects.models import Organization


def organization_suspended_blocks_start(*, organization: Organization) -> str | None:
    """``start_blockers``: an organization suspended for an invoice unpaid past the grace period runs no broker
    until it is paid."""
    return billing_suspension_reason(organization_id=organization.pk)


def organization_payment_failures(*, organization_ids: list[str]) -> dict[str, datetime]:
    """``organization_payment_failures``: the organizations among ``organization_ids`` whose last payment failed
    (the ``payment_failed`` alert condition), in one query."""
    return organization_ids_with_failed_payment(organization_ids=organization_ids)


#: ``change_quote``: what a previewed change would be charged (a switch to annual, a scale inside a term).
change_quote = subscription_change_quote
