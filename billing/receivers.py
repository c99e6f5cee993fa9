"""What billing does when an app below it asks or announces something; ``BillingConfig.ready`` registers these
on the hooks they answer (``deployments.hooks``)."""

from __future__ import annotations

from billing.selectors import billing_suspension_reason
from projects.models import Organization


def organization_suspended_blocks_start(*, organization: Organization) -> str | None:
    """``start_blockers``: an organization suspended for an invoice unpaid past the grace period runs no broker
    until it is paid."""
    return billing_suspension_reason(organization_id=organization.pk)
