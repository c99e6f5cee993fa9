"""Reads of deployments and the catalog."""

from __future__ import annotations

from django.db.models import QuerySet

from deployments.models import Region, Spec, Tier


def deployment_count_for_project(*, project_id: str) -> int:
    # Deployments arrive with issue 3; until then no project has any.
    return 0


def region_list(*, site: str) -> QuerySet[Region]:
    regions = Region.objects.filter(active=True).order_by("provider", "code")
    return regions.filter(id__in=[r.id for r in regions if site in r.sites])


def spec_list(*, flagship_enabled: bool) -> QuerySet[Spec]:
    """Active specs; flagship ones only for organizations an operator enabled."""
    qs = Spec.objects.filter(active=True).prefetch_related("prices").order_by("tier", "max_connections")
    if not flagship_enabled:
        qs = qs.exclude(tier=Tier.FLAGSHIP)
    return qs
