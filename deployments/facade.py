"""The door other apps use into deployments' services and selectors (inside ``deployments``, import the modules).

Besides this module, other apps import ``deployments.models`` (foreign keys, model classes and status choices)
and ``deployments.hooks`` (to answer deployments' questions). ``k8s`` is below deployments and knows nothing of
it.

Deployments the principal may see (organization first; a sub-account's projects only; deleted ones gone unless
asked for):
    ``deployment_list``, ``deployment_get`` (NotFound for one it may not see).

Routes of another app under ``/deployments/{id}/...`` (``/metrics`` in alerts, ``/subscription`` in billing):
    ``DeploymentScopedViewSet``, the base whose ``get_object()`` is the deployment, resolved and scoped exactly
    as ``/deployments/{id}`` does; register the viewset on the ``deployments`` prefix with basename
    ``deployment``.

Writes other apps ask for (audited under the given principal):
    ``deployment_stop`` (billing's dunning stops the deployments of a suspended organization).

What billing meters: ``BILLABLE`` (states billed by the hour) and ``STORAGE_BILLABLE`` (states billed at the
stopped rate); the catalog's prices of a spec: ``spec_prices`` and ``HOURS_PER_YEAR`` (what annual is set
against).

What the ops overview shows (system reads, staff only): ``deployment_status_counts()`` and
``operations_needing_attention(*, now, limit)`` (failed and stuck operations, stalled rolling restarts, newest
first, as ``OperationIssue``).

Operations (issue 18; ``deployments.operations.progress``): another app's asynchronous request records one
(``op_…``) in the transaction of its change with ``operation_start``, moves it with ``operation_step``, and ends it
with ``operation_succeed`` / ``operation_fail`` / ``operation_mark_cancelled`` (all idempotent); its answer links
it with ``operation_accepted`` (body + ``operation``, ``Location``). ``operation_latest_for_deployment`` reads it
back (scoped to the principal).

What the alert evaluator watches (system reads, no principal): ``failed_peerings_since``, and
``certificate_expiries(*, deployment_ids)`` (id -> (not_before, not_after) of each one's TLS server certificate).
"""

from __future__ import annotations

from deployments.api.base import DeploymentScopedViewSet
from deployments.api.operations import accepted as operation_accepted
from deployments.lifecycle import BILLABLE, STORAGE_BILLABLE
from deployments.operations.progress import (
    operation_fail,
    operation_mark_cancelled,
    operation_start,
    operation_step,
    operation_succeed,
)
from deployments.operations.selectors import operation_latest_for_deployment
from deployments.peering.selectors import failed_peerings_since
from deployments.selectors import (
    HOURS_PER_YEAR,
    OperationIssue,
    deployment_get,
    deployment_list,
    deployment_status_counts,
    operations_needing_attention,
    spec_prices,
)
from deployments.services import deployment_stop
from deployments.tls.selectors import certificate_expiries

__all__ = [
    "BILLABLE",
    "HOURS_PER_YEAR",
    "OperationIssue",
    "STORAGE_BILLABLE",
    "DeploymentScopedViewSet",
    "certificate_expiries",
    "deployment_get",
    "deployment_list",
    "deployment_status_counts",
    "deployment_stop",
    "failed_peerings_since",
    "operation_accepted",
    "operation_fail",
    "operation_latest_for_deployment",
    "operation_mark_cancelled",
    "operation_start",
    "operation_step",
    "operation_succeed",
    "operations_needing_attention",
    "spec_prices",
]
