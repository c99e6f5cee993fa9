"""Reads of operations, organization first."""

from __future__ import annotations

from django.db.models import QuerySet

from deployments.models import Operation
from deployments.operations.progress import ACTIVE
from projects.tenancy import Principal


def operation_list(*, principal: Principal) -> QuerySet[Operation]:
    """The organization's operations on what the principal may see (project-scoped roles: their projects)."""
    return principal.limit_to_projects(Operation.objects.filter(organization=principal.organization))


def operation_active_list(*, principal: Principal, deployment_id: str | None = None) -> QuerySet[Operation]:
    qs = operation_list(principal=principal).filter(status__in=ACTIVE)
    if deployment_id is not None:
        qs = qs.filter(deployment_id=deployment_id)
    return qs.order_by("-created_at")


def operation_latest_for_deployment(*, principal: Principal, deployment_id: str,
                                    type: str | None = None) -> Operation | None:
    qs = operation_list(principal=principal).filter(deployment_id=deployment_id, peering_id="")
    if type is not None:
        qs = qs.filter(type=type)
    return qs.order_by("-created_at").first()


def operation_latest_for_peering(*, peering_id: str) -> Operation | None:
    """For a peering the caller already resolved through the tenancy base."""
    return Operation.objects.filter(peering_id=peering_id).order_by("-created_at").first()
