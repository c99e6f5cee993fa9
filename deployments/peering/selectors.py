"""Reads of peerings. Organization (via the principal) first; sub-accounts see only their projects' peerings."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Min, QuerySet

from controlplane import errors
from deployments.models import Deployment, Peering, PeeringEvent
from deployments.models import PeeringStatus as P
from deployments.peering.lifecycle import RESERVING
from projects.tenancy import Principal


def peering_list(*, principal: Principal, deployment: Deployment | None = None,
                 include_deleted: bool = False) -> QuerySet[Peering]:
    qs = Peering.objects.filter(organization=principal.organization).select_related("deployment__region")
    if deployment is not None:
        qs = qs.filter(deployment=deployment)
    if not include_deleted:
        qs = qs.exclude(status=P.DELETED)
    return principal.limit_to_projects(qs, "deployment__project_id")


def peering_get(*, principal: Principal, peering_id: str) -> Peering:
    peering = peering_list(principal=principal).filter(id=peering_id).first()
    if peering is None:
        raise errors.NotFound(f"No peering {peering_id}.")
    return peering


def peering_event_list(*, principal: Principal, peering: Peering) -> QuerySet[PeeringEvent]:
    return PeeringEvent.objects.filter(organization=principal.organization, peering=peering)


def reserved_cidrs(*, deployment: Deployment, exclude_id: str | None = None) -> list[str]:
    """CIDRs of the deployment's peerings that hold their range (not deleted or failed): a new one may not
    overlap them."""
    qs = Peering.objects.filter(deployment=deployment, status__in=RESERVING)
    if exclude_id:
        qs = qs.exclude(pk=exclude_id)
    return list(qs.values_list("cidr", flat=True))


def region_routed_cidrs(*, deployment: Deployment) -> list[str]:
    """CIDRs routed through the region's shared platform route tables by other deployments' AWS peerings.

    One route table cannot hold two routes to the same destination, so these are unavailable too.
    """
    return list(Peering.objects.filter(deployment__region_id=deployment.region_id, provider="aws")
                .exclude(deployment=deployment).filter(status__in=RESERVING).values_list("cidr", flat=True))


def failed_peerings_since(*, project_ids: list[str]) -> dict[str, datetime]:
    """System read for the alert evaluator: deployment id → when its oldest still-failed peering failed."""
    rows = (Peering.objects.filter(deployment__project_id__in=project_ids, status=P.FAILED)
            .values("deployment_id").annotate(since=Min("status_changed_at")))
    return {row["deployment_id"]: row["since"] for row in rows}
