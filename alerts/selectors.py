"""Reads of the alerts app. Organization (via the principal or the deployment already scoped by it) first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from django.db.models import Count, Max, OuterRef, Prefetch, Q, QuerySet, Subquery

from alerts.models import (
    PUBLIC_METRICS,
    Alert,
    AlertChannel,
    AlertRule,
    MetricSample,
    Notification,
    NotificationKind,
    NotificationStatus,
)
from controlplane.selectors import task_heartbeat_at
from deployments.models import Deployment, DeploymentEvent, DeploymentStatus
from projects.tenancy import Principal


def metrics_current(*, deployment: Deployment) -> dict:
    """The latest scrape's values of every public metric (None when not known yet)."""
    samples = MetricSample.objects.filter(organization_id=deployment.organization_id, deployment=deployment,
                                          metric__in=PUBLIC_METRICS)
    latest = samples.aggregate(at=Max("at"))["at"]
    values: dict[str, float | None] = dict.fromkeys(PUBLIC_METRICS)
    if latest is not None:
        values.update(dict(samples.filter(at=latest).values_list("metric", "value")))
    return {"deployment": deployment.id, "at": latest, "metrics": values}


class MetricsState:
    """What the latest sample of a deployment may be shown as (``metrics_card_state``)."""

    LIVE = "live"  # it describes the broker as it runs now
    RESIZED = "resized"  # taken at the old size: a scale happened since, and no sample at the new size yet
    WAITING = "waiting"  # running, but nothing sampled since it (re)started
    STOPPED = "stopped"  # not serving clients: the last numbers are history, not now
    NONE = "none"  # never sampled and not running


def metrics_card_state(*, deployment: Deployment, latest_at: datetime | None) -> str:
    """Whether the latest sample (taken at ``latest_at``) still says how the deployment is doing. After a scale the
    collector's last sample measured the old size against the old spec ("33% of 5000" was 330 of 1000), and while
    stopped the last live numbers are not live any more."""
    if deployment.status == DeploymentStatus.SCALING:
        return MetricsState.RESIZED
    if deployment.status != DeploymentStatus.RUNNING:
        return MetricsState.STOPPED if latest_at else MetricsState.NONE
    # The moment it last became running: a sample from before it measured another size or a run that ended.
    began = (DeploymentEvent.objects.filter(organization_id=deployment.organization_id, deployment=deployment,
                                            to_status=DeploymentStatus.RUNNING)
             .order_by("-created_at").values("created_at", "from_status").first())
    if latest_at is None:
        return MetricsState.WAITING
    if began is None or latest_at >= began["created_at"]:
        return MetricsState.LIVE
    return MetricsState.RESIZED if began["from_status"] == DeploymentStatus.SCALING else MetricsState.WAITING


def metric_series(*, deployment: Deployment, metric: str, since: datetime, until: datetime,
                  step_s: int) -> list[dict]:
    """Averages of one metric over buckets of ``step_s`` seconds, aligned to the epoch; empty buckets left out."""
    rows = (MetricSample.objects.filter(organization_id=deployment.organization_id, deployment=deployment,
                                        metric=metric, at__gte=since, at__lte=until)
            .order_by("at").values_list("at", "value"))
    buckets: dict[int, list[float]] = {}
    for at, value in rows:
        key = int(at.timestamp()) // step_s * step_s
        buckets.setdefault(key, []).append(value)
    return [{"at": datetime.fromtimestamp(key, tz=UTC), "value": round(sum(vals) / len(vals), 4),
             "samples": len(vals)} for key, vals in sorted(buckets.items())]


def metric_latest_values(*, deployment_ids: list[str], metric: str, since: datetime) -> dict[str, list]:
    """Samples of one metric since a time for many deployments (system reads, used by the evaluator)."""
    result: dict[str, list] = {}
    rows = (MetricSample.objects.filter(deployment_id__in=deployment_ids, metric=metric, at__gte=since)
            .order_by("at").values_list("deployment_id", "at", "value"))
    for deployment_id, at, value in rows:
        result.setdefault(deployment_id, []).append((at, value))
    return result


#: Where ``channel_list(with_last_delivery=True)`` puts each channel's latest notification (a list of 0 or 1).
LAST_DELIVERY = "last_delivery_prefetched"


def channel_list(*, principal: Principal, with_last_delivery: bool = False) -> QuerySet[AlertChannel]:
    """The organization's channels; ``with_last_delivery`` fetches every channel's latest notification in one
    more query (a window over the page's channels), for lists that show it."""
    qs = AlertChannel.objects.filter(organization=principal.organization).order_by("created_at", "id")
    if with_last_delivery:
        latest = Notification.objects.order_by("-created_at", "-id")[:1]
        qs = qs.prefetch_related(Prefetch("notifications", queryset=latest, to_attr=LAST_DELIVERY))
    return qs


def channel_last_delivery(channel: AlertChannel) -> Notification | None:
    """The channel's latest notification: prefetched by ``channel_list(with_last_delivery=True)``, else asked."""
    prefetched = getattr(channel, LAST_DELIVERY, None)
    if prefetched is not None:
        return prefetched[0] if prefetched else None
    return channel.notifications.order_by("-created_at", "-id").first()


WEBHOOK_PATH_MASK = "/***"


def webhook_url_masked(url: str) -> str:
    """Scheme, host and port only: a webhook's path and query are often its credential (Slack, Teams)."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return WEBHOOK_PATH_MASK
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname or ""
    return f"{parts.scheme}://{host}{port}{WEBHOOK_PATH_MASK}"


def rule_list(*, principal: Principal) -> QuerySet[AlertRule]:
    qs = AlertRule.objects.filter(organization=principal.organization).prefetch_related("channels")
    return principal.limit_to_projects(qs).order_by("created_at", "id")


def alert_list(*, principal: Principal) -> QuerySet[Alert]:
    qs = Alert.objects.filter(organization=principal.organization)
    return principal.limit_to_projects(qs, "rule__project_id").order_by("-started_at", "id")


def notification_list(*, principal: Principal) -> QuerySet[Notification]:
    """A member limited to projects sees deliveries of those projects' incidents and the channels' test sends
    (channels are organization-wide and visible to them); notices (budgets) and other projects' incidents are
    left out: their payloads name projects, deployments and amounts the member may not see."""
    qs = Notification.objects.filter(organization=principal.organization)
    if principal.is_project_limited:
        qs = qs.filter(Q(kind=NotificationKind.TEST) | Q(alert__rule__project_id__in=principal.project_ids))
    return qs.order_by("-created_at", "id")


def channel_last_deliveries(*, principal: Principal, channel_ids: list[str]) -> dict[str, Notification]:
    """The newest delivery the principal may see per channel. A correlated subquery rather than PostgreSQL's
    ``DISTINCT ON``, so the embedded default (SQLite) serves the same page."""
    visible = notification_list(principal=principal)
    newest = visible.filter(channel_id=OuterRef("channel_id")).order_by("-created_at", "-id").values("id")[:1]
    rows = visible.filter(channel_id__in=channel_ids, id=Subquery(newest))
    return {n.channel_id: n for n in rows}


# --- the fleet, for the ops overview (system reads: staff only) -------------------------------------------
EVALUATE_TASK = "alerts.tasks.alerts_evaluate"


def evaluation_lag_seconds(*, now: datetime) -> float | None:
    """Seconds since the rule evaluation (a beat job every 30 s) last finished; None if it never has since
    records began. Far above the schedule means incidents open and resolve late, or not at all."""
    last = task_heartbeat_at(task_name=EVALUATE_TASK)
    return None if last is None else max(0.0, (now - last).total_seconds())


@dataclass(frozen=True)
class DeliveryStats:
    delivered: int
    failed: int
    pending: int

    @property
    def failure_rate(self) -> float | None:
        """Failed among the finished deliveries (pending ones are still being tried); None without any."""
        finished = self.delivered + self.failed
        return None if finished == 0 else self.failed / finished


def delivery_stats(*, since: datetime) -> DeliveryStats:
    """Notification deliveries created since ``since`` by status, over every organization."""
    counts = dict(Notification.objects.filter(created_at__gte=since).values_list("status").annotate(n=Count("id")))
    return DeliveryStats(delivered=counts.get(NotificationStatus.DELIVERED, 0),
                         failed=counts.get(NotificationStatus.FAILED, 0),
                         pending=counts.get(NotificationStatus.PENDING, 0))
