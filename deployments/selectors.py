"""Reads of deployments and the catalog. Organization (via the principal) first."""

from __future__ import annotations

import ipaddress
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import QuerySet

from controlplane import errors
from deployments.models import Deployment, DeploymentEvent, HttpAuthConfig, Peering, PeeringStatus, Region, Spec, Tier
from deployments.models import DeploymentStatus as S
from projects.tenancy import Principal


def deployment_count_for_project(*, project_id: str) -> int:
    return Deployment.objects.filter(project_id=project_id).exclude(status=S.DELETED).count()


def deployment_list(*, principal: Principal, include_deleted: bool = False) -> QuerySet[Deployment]:
    qs = Deployment.objects.filter(organization=principal.organization).select_related("spec", "region",
                                                                                        "target_spec")
    if not include_deleted:
        qs = qs.exclude(status=S.DELETED)
    return principal.limit_to_projects(qs)


def deployment_get(*, principal: Principal, deployment_id: str) -> Deployment:
    deployment = deployment_list(principal=principal).filter(id=deployment_id).first()
    if deployment is None:
        raise errors.NotFound(f"No deployment {deployment_id}.")
    return deployment


def deployment_event_list(*, principal: Principal, deployment: Deployment) -> QuerySet[DeploymentEvent]:
    return DeploymentEvent.objects.filter(organization=principal.organization, deployment=deployment)


def http_auth_list(*, principal: Principal) -> QuerySet[HttpAuthConfig]:
    return HttpAuthConfig.objects.filter(organization=principal.organization)


def http_auth_get(*, principal: Principal, deployment: Deployment) -> HttpAuthConfig:
    config = http_auth_list(principal=principal).filter(deployment=deployment).first()
    if config is None:
        raise errors.NotFound(f"The deployment {deployment.id} has no HTTP authentication configured.")
    return config


def active_peering_networks(deployment: Deployment) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The CIDRs of the deployment's active VPC peerings: private addresses the broker may reach."""
    return [ipaddress.ip_network(cidr)
            for cidr in active_peering_cidrs(deployment_ids=[deployment.id]).get(deployment.id, [])]


def active_peering_cidrs(*, deployment_ids: list[str]) -> dict[str, list[str]]:
    """Deployment id → the CIDRs of its active peerings (normalized, oldest peering first), in one query."""
    rows = (Peering.objects.filter(deployment_id__in=deployment_ids, status=PeeringStatus.ACTIVE)
            .order_by("created_at", "id").values_list("deployment_id", "cidr"))
    cidrs: dict[str, list[str]] = {}
    for deployment_id, cidr in rows:
        cidrs.setdefault(deployment_id, []).append(str(ipaddress.ip_network(cidr)))
    return cidrs


def region_list(*, site: str) -> QuerySet[Region]:
    regions = Region.objects.filter(active=True).order_by("provider", "code")
    return regions.filter(id__in=[r.id for r in regions if site in r.sites])


def region_get(*, site: str, region_id: str) -> Region:
    region = region_list(site=site).filter(id=region_id).first()
    if region is None:
        raise errors.field_invalid("region", f"No region {region_id}.")
    return region


def spec_list(*, flagship_enabled: bool) -> QuerySet[Spec]:
    """Active specs; flagship ones only for organizations an operator enabled."""
    qs = Spec.objects.filter(active=True).prefetch_related("prices").order_by("tier", "max_connections")
    if not flagship_enabled:
        qs = qs.exclude(tier=Tier.FLAGSHIP)
    return qs


def spec_get(*, flagship_enabled: bool, spec_id: str) -> Spec:
    spec = spec_list(flagship_enabled=flagship_enabled).filter(id=spec_id).first()
    if spec is None:
        raise errors.field_invalid("spec", f"No spec {spec_id}.")
    return spec


HOURS_PER_YEAR = 8760
#: An average month (8760 / 12): what "about a month" of hours costs, the way cloud price pages estimate it.
HOURS_PER_MONTH = HOURS_PER_YEAR // 12


def spec_prices(*, spec: Spec, currency: str) -> dict | None:
    """The spec's hourly, stopped (storage) and annual prices in ``currency``, an estimate of a month running
    (``HOURS_PER_MONTH`` hours), and how much annual saves against a year of hours.

    Reads ``spec.prices.all()`` so a ``spec_list`` (which prefetches them) costs no query per spec.
    """
    price = next((p for p in spec.prices.all() if p.currency == currency), None)
    if price is None:
        return None
    full_year = price.hourly * HOURS_PER_YEAR
    saving = ((full_year - price.annual) / full_year * 100).quantize(Decimal("0.1")) if full_year else Decimal(0)
    monthly = (price.hourly * HOURS_PER_MONTH).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return {"hourly": price.hourly, "stopped_hourly": price.stopped_hourly, "annual": price.annual,
            "monthly_estimate": monthly, "currency": currency, "annual_saving_pct": saving}
