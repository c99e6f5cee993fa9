"""The public door of ``deployments``: what the apps above it (``alerts``, ``billing``) may call. They import this
module (and ``deployments.models`` for foreign keys and model classes), never deployments' services, selectors,
lifecycle or peering modules.

(A minimal version made on the billing branch of issue 12 with the names alerts and billing use; the deployments
branch owns this file.)
"""

from __future__ import annotations

from deployments.lifecycle import BILLABLE, STORAGE_BILLABLE
from deployments.peering.selectors import failed_peerings_since
from deployments.selectors import HOURS_PER_YEAR, deployment_get, deployment_list, spec_prices
from deployments.services import deployment_stop

# --- reads, organization first ----------------------------------------------------------------------------------
# ``deployment_list(*, principal, include_deleted=False)``, ``deployment_get(*, principal, deployment_id)`` (404 if
# the principal cannot see it); ``spec_prices(*, spec, currency)`` and ``HOURS_PER_YEAR`` for price displays.

# --- lifecycle facts metering needs -----------------------------------------------------------------------------
# ``BILLABLE``: the statuses charged at the hourly price; ``STORAGE_BILLABLE``: those charged the storage rate.

# --- writes -----------------------------------------------------------------------------------------------------
# ``deployment_stop(*, principal, deployment)``: stops a running deployment (billing suspends unpaid accounts with
# it, as the system principal); raises Conflict when the deployment cannot be stopped now.

# --- peering (system read for the alert evaluator) --------------------------------------------------------------
# ``failed_peerings_since(*, project_ids)``: deployment id → when its peering failed, for those projects.

__all__ = [
    "BILLABLE",
    "HOURS_PER_YEAR",
    "STORAGE_BILLABLE",
    "deployment_get",
    "deployment_list",
    "deployment_stop",
    "failed_peerings_since",
    "spec_prices",
]
