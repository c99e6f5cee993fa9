"""The alert evaluator: turns metric samples into incidents. Idempotent: running it twice for the same
instant changes nothing (one open incident per rule and deployment is a database constraint)."""

from __future__ import annotations

import operator as op
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from alerts.models import EVENT_METRICS, Alert, AlertRule, AlertState, MetricSample, NotificationKind
from alerts.services import _notify
from deployments.models import Deployment, DeploymentStatus

OPERATORS = {">": op.gt, ">=": op.ge, "<": op.lt, "<=": op.le}


def condition_since(samples: list[tuple[datetime, float]], rule: AlertRule) -> datetime | None:
    """When the trailing run of samples meeting the condition began (None if the latest does not meet it)."""
    compare, threshold = OPERATORS[rule.operator], float(Decimal(rule.threshold))
    since = None
    for at, value in reversed(samples):
        if not compare(value, threshold):
            break
        since = at
    return since


def cleared_for(samples: list[tuple[datetime, float]], rule: AlertRule, now: datetime) -> float:
    """Seconds since the trailing run of samples failing the condition began (0 if the latest meets it)."""
    compare, threshold = OPERATORS[rule.operator], float(Decimal(rule.threshold))
    since = None
    for at, value in reversed(samples):
        if compare(value, threshold):
            break
        since = at
    return (now - since).total_seconds() if since else 0.0


def _deployments_for(rule: AlertRule) -> list[Deployment]:
    if rule.deployment_id:
        return [rule.deployment] if rule.deployment.status == DeploymentStatus.RUNNING else []
    return list(Deployment.objects.filter(project_id=rule.project_id, status=DeploymentStatus.RUNNING))


def _event_samples(rule: AlertRule, deployment_ids: set[str], now: datetime) -> tuple[
        dict[str, Deployment], dict[str, list[tuple[datetime, float]]]]:
    """Lifecycle-event rules: a deployment in the watched state reports 1 since it entered it, else 0 now."""
    scope = Deployment.objects.exclude(status=DeploymentStatus.DELETED)
    scope = scope.filter(pk=rule.deployment_id) if rule.deployment_id else scope.filter(project_id=rule.project_id)
    watched = {d.id: d for d in scope.filter(status=DeploymentStatus.FAILED)}
    samples = {d.id: [(d.status_changed_at, 1.0)] for d in watched.values()}
    for deployment_id in deployment_ids - set(watched):
        samples[deployment_id] = [(now, 0.0)]
    return watched, samples


def alerts_evaluate(*, now: datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    stats = {"rules": 0, "fired": 0, "resolved": 0, "renotified": 0}
    rules = AlertRule.objects.filter(enabled=True).select_related("deployment").prefetch_related("channels")
    fresh_after = now - timedelta(seconds=settings.ALERTS_SAMPLE_STALE_S)
    for rule in rules:
        stats["rules"] += 1
        open_alerts = {a.deployment_id: a for a in Alert.objects.filter(rule=rule, state=AlertState.FIRING)
                       .select_related("deployment")}
        samples: dict[str, list[tuple[datetime, float]]] = {}
        if rule.metric in EVENT_METRICS:
            deployments, samples = _event_samples(rule, set(open_alerts), now)
        else:
            deployments = {d.id: d for d in _deployments_for(rule)}
            window = now - timedelta(seconds=rule.duration_s + settings.ALERTS_SAMPLE_STALE_S)
            for deployment_id, at, value in (MetricSample.objects.filter(
                    deployment_id__in=list(deployments) + list(open_alerts), metric=rule.metric, at__gte=window,
                    at__lte=now).order_by("at").values_list("deployment_id", "at", "value")):
                samples.setdefault(deployment_id, []).append((at, value))
        for deployment_id in set(deployments) | set(open_alerts):
            series = samples.get(deployment_id, [])
            fresh = rule.metric in EVENT_METRICS or (series and series[-1][0] >= fresh_after)
            latest = series[-1] if series and fresh else None
            since = condition_since(series, rule) if latest else None
            holds = since is not None and deployment_id in deployments and (now - since).total_seconds() >= \
                rule.duration_s
            alert = open_alerts.get(deployment_id)
            if holds and alert is None:
                stats["fired"] += _fire(rule, deployments[deployment_id], since, latest[1], now)
            elif alert is not None and holds:
                stats["renotified"] += _maybe_renotify(alert, latest[1], now)
            elif alert is not None and since is None and (
                    latest is None or rule.metric in EVENT_METRICS
                    or cleared_for(series, rule, now) >= settings.ALERTS_RESOLVE_AFTER_S):
                # Cleared: the deployment stopped reporting, or the condition has failed for a while (flapping
                # around the threshold is damped: one dip below it does not resolve and re-fire the incident).
                stats["resolved"] += _resolve(alert, latest[1] if latest else alert.value, now)
    return stats


def _fire(rule: AlertRule, deployment: Deployment, since: datetime, value: float, now: datetime) -> int:
    try:
        with transaction.atomic():
            alert = Alert.objects.create(organization_id=rule.organization_id, rule=rule, deployment=deployment,
                                         state=AlertState.FIRING, started_at=since, value=value, last_notified_at=now)
            _notify(alert, NotificationKind.TRIGGER, now)
    except IntegrityError:  # a concurrent evaluator opened it first
        return 0
    return 1


def _maybe_renotify(alert: Alert, value: float, now: datetime) -> int:
    rule = alert.rule
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert.pk)
        alert.value = value
        due = rule.repeat_interval_s and (alert.last_notified_at is None or
                                          (now - alert.last_notified_at).total_seconds() >= rule.repeat_interval_s)
        if due:
            alert.last_notified_at = now
            _notify(alert, NotificationKind.TRIGGER, now)
        alert.save(update_fields=["value", "last_notified_at"])
    return 1 if due else 0


def _resolve(alert: Alert, value: float, now: datetime) -> int:
    with transaction.atomic():
        alert = Alert.objects.select_for_update().select_related("rule", "deployment").get(pk=alert.pk)
        if alert.state != AlertState.FIRING:
            return 0
        alert.state, alert.resolved_at, alert.value = AlertState.RESOLVED, now, value
        alert.save(update_fields=["state", "resolved_at", "value"])
        _notify(alert, NotificationKind.RESOLVE, now)
    return 1
