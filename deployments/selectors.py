"""Reads of deployments and the catalog. Organization (via the principal) first."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db.models import Count, Q, QuerySet

from controlplane import errors
from deployments.lifecycle import ROLLING_RESTART, TRANSITIONAL
from deployments.models import Deployment, DeploymentEvent, HttpAuthConfig, Peering, PeeringStatus, Region, Spec, Tier
from deployments.models import DeploymentStatus as S
from projects.tenancy import Principal


def deployment_count_for_project(*, project_id: str) -> int:
    return Deployment.objects.filter(project_id=project_id).exclude(status=S.DELETED).count()


def deployment_list(*, principal: Principal, include_deleted: bool = False) -> QuerySet[Deployment]:
    qs = Deployment.objects.filter(organization_id=principal.organization.pk).select_related("spec", "region",
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


#: Statuses whose operation rolls the HTTP auth configuration out with it (it is live when they reach running).
_ROLLING_WITH_OPERATION = frozenset({S.PENDING, S.PROVISIONING, S.STARTING, S.SCALING})


@dataclass(frozen=True)
class HttpAuthRollout:
    """Whether a deployment's HTTP auth configuration is live: the one answer the console, the API's
    ``applied`` and the ops site give. Live means every broker node runs it (recorded when the rolling restart,
    or the operation that carried it, finished), not merely that its objects were applied."""

    generation: int
    live_generation: int
    enabled: bool
    deployment_status: str
    restart_started_at: datetime | None

    @property
    def live(self) -> bool:
        return self.live_generation >= self.generation

    @property
    def state(self) -> str:
        """``live``; ``applying`` (nodes restarting, or an operation carrying it); ``waiting`` (loads on start)."""
        if self.live:
            return "live"
        if self.deployment_status == S.RUNNING or self.deployment_status in _ROLLING_WITH_OPERATION:
            return "applying"
        return "waiting"

    @property
    def label(self) -> str:
        if self.state == "live":
            return "Live:" if self.enabled else "Disabled:"
        return "Applying" if self.state == "applying" else "Waiting:"

    @property
    def text(self) -> str:
        n = self.generation
        if self.state == "live":
            return (f"configuration {n} runs on every broker node." if self.enabled
                    else f"configuration {n} is saved but the broker does not use it.")
        if self.state == "applying":
            since = f" (since {self.restart_started_at:%H:%M:%S} UTC)" if self.restart_started_at else ""
            return f"configuration {n}: the broker nodes restart one at a time to load it{since}."
        return (f"configuration {n} is saved; the broker loads it when the deployment next starts "
                f"(it is {self.deployment_status}).")


def http_auth_rollout(*, deployment: Deployment) -> HttpAuthRollout | None:
    """A system read (callers resolved ``deployment`` for their principal, or are staff); None without a
    configuration."""
    config = HttpAuthConfig.objects.filter(deployment_id=deployment.pk).only(
        "generation", "applied_generation", "enabled").first()
    if config is None:
        return None
    restart = (DeploymentEvent.objects.filter(deployment_id=deployment.pk, details__operation=ROLLING_RESTART,
                                              details__http_auth_generation=config.generation)
               .order_by("created_at", "id").values_list("created_at", flat=True).first())
    return HttpAuthRollout(generation=config.generation, live_generation=config.applied_generation,
                           enabled=config.enabled, deployment_status=deployment.status, restart_started_at=restart)


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


# --- the fleet, for the ops overview (system reads: staff only) -------------------------------------------
def deployment_status_counts() -> dict[str, int]:
    """How many deployments are in each status (deleted ones left out), every status named, busiest first."""
    counts = dict.fromkeys((s for s in S.values if s != S.DELETED), 0)
    for row in Deployment.objects.exclude(status=S.DELETED).values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


@dataclass(frozen=True)
class OperationIssue:
    """A deployment operation an operator should look at: ``failed``, ``stuck`` (a transitional status past the
    operation timeout) or ``restart stalled`` (a rolling restart past it)."""

    kind: str
    deployment_id: str
    deployment_name: str
    organization_id: str
    status: str
    since: datetime
    detail: str


def operations_needing_attention(*, now: datetime, limit: int = 50) -> list[OperationIssue]:
    """Failed and stuck operations and stalled rolling restarts, the newest first."""
    stuck_before = now - timedelta(seconds=settings.DEPLOYMENT_OPERATION_TIMEOUT_SECONDS)
    issues: list[OperationIssue] = []
    rows = (Deployment.objects.filter(Q(status=S.FAILED) | Q(status__in=TRANSITIONAL,
                                                              status_changed_at__lt=stuck_before))
            .order_by("-status_changed_at", "-id")[:limit])
    for d in rows:
        issues.append(OperationIssue(
            kind="failed" if d.status == S.FAILED else "stuck", deployment_id=d.id, deployment_name=d.name,
            organization_id=d.organization_id, status=d.status, since=d.status_changed_at,
            detail=d.status_reason if d.status == S.FAILED else f"{d.status} for {_age(now - d.status_changed_at)}"))
    stalled = (DeploymentEvent.objects.filter(details__operation=ROLLING_RESTART, details__phase="stalled",
                                              created_at__gte=now - timedelta(days=7))
               .select_related("deployment").order_by("-created_at", "-id")[:limit])
    for event in stalled:
        latest = (DeploymentEvent.objects.filter(deployment_id=event.deployment_id, details__operation=ROLLING_RESTART)
                  .order_by("-created_at", "-id").values_list("id", flat=True).first())
        if latest == event.id and event.deployment.status == S.RUNNING:
            issues.append(OperationIssue(
                kind="restart stalled", deployment_id=event.deployment_id, deployment_name=event.deployment.name,
                organization_id=event.organization_id, status=event.deployment.status, since=event.created_at,
                detail=event.reason))
    issues.sort(key=lambda issue: issue.since, reverse=True)
    return issues[:limit]


def _age(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"
