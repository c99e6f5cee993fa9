"""What billing answers to the apps below it; ``BillingConfig.ready`` registers these on the hooks they answer
(``alerts.hooks``)."""

from __future__ import annotations

from datetime import datetime

from billing import selectors


def organization_payment_failures(*, organization_ids: list[str]) -> dict[str, datetime]:
    """``organization_payment_failures``: the organizations among ``organization_ids`` whose last payment failed
    (the ``payment_failed`` alert condition), in one query."""
    return selectors.organization_ids_with_failed_payment(organization_ids=organization_ids)
