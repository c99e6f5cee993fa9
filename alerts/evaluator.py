"""The alert evaluator: turns metric samples and lifecycle states into incidents. Idempotent: running it twice
for the same instant changes nothing (one open incident per rule and deployment, and per rule for organization
conditions, are database constraints).

One pass reads everything it needs in a fixed number of queries, whatever the number of rules and deployments
(a snapshot: deployments in scope, samples per watched metric, failed deployments and peerings, failed
payments, open incidents); only state changes (fire, re-notify, resolve) write row by row.
"""

from __future__ import annotations

import bisect
import operator as op
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F, FloatField, Func
from django.utils import timezone

from alerts import hooks
from alerts.models import (
    CERTIFICATE_METRICS,
    EVENT_METRICS,
    ORGANIZATION_METRICS,
    Alert,
    AlertRule,
    AlertState,
    MetricSample,
    NotificationKind,
)
from alerts.services.notifications import alerts_notify
from controlplane.db import lock_row
from deployments.facade import certificate_expiries, failed_peerings_since
from deployments.models import Deployment, DeploymentStatus


class EpochSeconds(Func):
    """A timestamp as float seconds since the Unix epoch, computed by the database: converting tens of thousands
    of datetimes in Python was most of a pass's time over a large fleet. SQLite (the embedded default) has no
    EXTRACT; its Julian day keeps milliseconds, finer than anything the evaluator compares."""

    output_field = FloatField()

    def as_postgresql(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection, template="EXTRACT(EPOCH FROM %(expressions)s)::float8",
                           **extra_context)

    def as_sqlite(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection, template="(julianday(%(expressions)s) - 2440587.5) * 86400.0",
                           **extra_context)


EPOCH = EpochSeconds(F("at"))
#: What incidents and their notifications read of a deployment. Loading only these skips decrypting the broker
#: secrets of every deployment in scope (most of a pass's time over a large fleet).
DEPLOYMENT_FIELDS = ("id", "organization_id", "project_id", "name", "status", "status_reason", "status_changed_at")
OPERATORS = {">": op.gt, ">=": op.ge, "<": op.lt, "<=": op.le}
#: (epoch seconds, value), oldest first. Epoch floats rather than datetimes: parsing tens of thousands of
#: timestamps per pass was most of its time over a large fleet.
Series = list[tuple[float, float]]
#: The subject of an incident: a deployment id, or None for an organization condition.
Subject = str | None


def condition_since(samples: Series, rule: AlertRule) -> float | None:
    """When the trailing run of samples meeting the condition began (None if the latest does not meet it)."""
    compare, threshold = OPERATORS[rule.operator], float(Decimal(rule.threshold))
    since = None
    for at, value in reversed(samples):
        if not compare(value, threshold):
            break
        since = at
    return since


def certificate_point(not_before: datetime, not_after: datetime, rule: AlertRule, now: datetime) -> tuple[float, float]:
    """(since when, days left now): the value is read now, not sampled, so the condition's start is computed.
    Days left fall steadily, so a ``<``/``<=`` condition began when they crossed the threshold (or at issuance,
    if the certificate was born below it), a ``>``/``>=`` one at issuance."""
    days = round((not_after - now).total_seconds() / 86400, 2)
    since = not_before
    if rule.operator in ("<", "<="):
        since = max(not_before, not_after - timedelta(days=float(Decimal(rule.threshold))))
    return min(since, now).timestamp(), days


def cleared_for(samples: Series, rule: AlertRule, now: float) -> float:
    """Seconds since the trailing run of samples failing the condition began (0 if the latest meets it)."""
    compare, threshold = OPERATORS[rule.operator], float(Decimal(rule.threshold))
    since = None
    for at, value in reversed(samples):
        if compare(value, threshold):
            break
        since = at
    return now - since if since else 0.0


@dataclass
class Snapshot:
    """Everything one evaluation pass reads, loaded once for all rules."""

    now: datetime
    rules: list[AlertRule]
    open_alerts: dict[str, dict[Subject, Alert]] = field(default_factory=dict)
    running: dict[str, list[Deployment]] = field(default_factory=dict)  # project id → running deployments
    live: dict[str, list[Deployment]] = field(default_factory=dict)  # project id → not deleted
    by_id: dict[str, Deployment] = field(default_factory=dict)
    samples: dict[str, dict[str, Series]] = field(default_factory=dict)  # metric → deployment id → series
    failed_peerings: dict[str, datetime] = field(default_factory=dict)
    failed_payments: dict[str, datetime] = field(default_factory=dict)
    certificates: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)  # id → (not_before, not_after)

    @classmethod
    def load(cls, now: datetime) -> Snapshot:
        rules = list(AlertRule.objects.filter(enabled=True).select_related("deployment")
                     .prefetch_related("channels"))
        snapshot = cls(now=now, rules=rules)
        alerts = list(Alert.objects.filter(state=AlertState.FIRING, rule__enabled=True))
        deployment_rules = [r for r in rules if r.metric not in ORGANIZATION_METRICS]
        project_ids = sorted({r.project_id for r in deployment_rules})
        if project_ids:
            for deployment in Deployment.objects.filter(project_id__in=project_ids).exclude(
                    status=DeploymentStatus.DELETED).only(*DEPLOYMENT_FIELDS):
                snapshot.by_id[deployment.id] = deployment
                snapshot.live.setdefault(deployment.project_id, []).append(deployment)
                if deployment.status == DeploymentStatus.RUNNING:
                    snapshot.running.setdefault(deployment.project_id, []).append(deployment)
        missing = {a.deployment_id for a in alerts if a.deployment_id} - set(snapshot.by_id)
        if missing:  # deployments of open incidents out of scope now (deleted): still named in the resolve
            snapshot.by_id.update((d.id, d) for d in Deployment.objects.filter(pk__in=missing).only(*DEPLOYMENT_FIELDS))
        for alert in alerts:
            if alert.deployment_id:
                alert.deployment = snapshot.by_id[alert.deployment_id]
            snapshot.open_alerts.setdefault(alert.rule_id, {})[alert.deployment_id] = alert
        snapshot._load_samples([r for r in deployment_rules if r.metric not in EVENT_METRICS + CERTIFICATE_METRICS])
        certificate_projects = {r.project_id for r in rules if r.metric in CERTIFICATE_METRICS}
        if certificate_projects:
            snapshot.certificates = certificate_expiries(deployment_ids=sorted(
                d.id for project_id in certificate_projects for d in snapshot.running.get(project_id, [])))
        if any(r.metric == "peering_failed" for r in rules):
            snapshot.failed_peerings = failed_peerings_since(
                project_ids=sorted({r.project_id for r in rules if r.metric == "peering_failed"}))
        if any(r.metric == "payment_failed" for r in rules):
            # Payments are billing's, above alerts: billing answers the hook (alerts.hooks).
            for answer in hooks.organization_payment_failures.collect(
                    organization_ids=sorted({r.organization_id for r in rules if r.metric == "payment_failed"})):
                snapshot.failed_payments.update(answer)
        return snapshot

    def _load_samples(self, rules: list[AlertRule]) -> None:
        """One query per watched metric, over the longest window any rule on it needs."""
        windows: dict[str, int] = {}
        deployment_ids: dict[str, set[str]] = defaultdict(set)
        for rule in rules:
            windows[rule.metric] = max(windows.get(rule.metric, 0), rule.duration_s)
            deployment_ids[rule.metric] |= {d.id for d in self.running.get(rule.project_id, [])}
            deployment_ids[rule.metric] |= {k for k in self.open_alerts.get(rule.id, {}) if k}
        for metric, duration_s in windows.items():
            since = self.now - timedelta(seconds=duration_s + settings.ALERTS_SAMPLE_STALE_S)
            series: dict[str, Series] = {}
            for deployment_id, at, value in (MetricSample.objects.filter(
                    deployment_id__in=sorted(deployment_ids[metric]), metric=metric, at__gte=since, at__lte=self.now)
                    .order_by("at").annotate(epoch=EPOCH).values_list("deployment_id", "epoch", "value")):
                series.setdefault(deployment_id, []).append((at, value))
            self.samples[metric] = series

    def scope(self, rule: AlertRule) -> tuple[dict[Subject, Deployment | None], dict[Subject, Series], bool]:
        """The rule's current subjects (those it may fire on), their series, and whether the series are scraped
        samples (which go stale) rather than states read now."""
        now, opened = self.now.timestamp(), self.open_alerts.get(rule.id, {})
        if rule.metric in ORGANIZATION_METRICS:
            failed_at = self.failed_payments.get(rule.organization_id)
            return {None: None}, {None: [(failed_at.timestamp(), 1.0)] if failed_at else [(now, 0.0)]}, False
        if rule.metric in EVENT_METRICS:
            live = self.live.get(rule.project_id, [])
            if rule.deployment_id:
                live = [d for d in live if d.id == rule.deployment_id]
            if rule.metric == "deployment_failed":
                since = {d.id: d.status_changed_at.timestamp() for d in live if d.status == DeploymentStatus.FAILED}
            else:
                since = {d.id: self.failed_peerings[d.id].timestamp() for d in live if d.id in self.failed_peerings}
            subjects = {d.id: d for d in live if d.id in since}
            series = {k: [(since[k], 1.0)] if k in since else [(now, 0.0)] for k in set(subjects) | set(opened)}
            return subjects, series, False
        running = self.running.get(rule.project_id, [])
        if rule.deployment_id:
            running = [d for d in running if d.id == rule.deployment_id]
        if rule.metric in CERTIFICATE_METRICS:
            subjects = {d.id: d for d in running if d.id in self.certificates}
            return subjects, {k: [certificate_point(*self.certificates[k], rule, self.now)] for k in subjects}, False
        window = now - (rule.duration_s + settings.ALERTS_SAMPLE_STALE_S)
        samples = self.samples.get(rule.metric, {})
        series = {}
        for key in {d.id for d in running} | set(opened):
            full = samples.get(key, [])
            series[key] = full[bisect.bisect_left(full, window, key=lambda s: s[0]):]
        return {d.id: d for d in running}, series, True


def alerts_evaluate(*, now: datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    stats = {"rules": 0, "fired": 0, "resolved": 0, "renotified": 0}
    snapshot = Snapshot.load(now)
    now_s = now.timestamp()
    fresh_after = now_s - settings.ALERTS_SAMPLE_STALE_S
    still_firing: list[Alert] = []
    to_open: list[Alert] = []
    for rule in snapshot.rules:
        stats["rules"] += 1
        open_alerts = snapshot.open_alerts.get(rule.id, {})
        subjects, samples, scraped = snapshot.scope(rule)
        for key in set(subjects) | set(open_alerts):
            series = samples.get(key, [])
            fresh = not scraped or (series and series[-1][0] >= fresh_after)
            latest = series[-1] if series and fresh else None
            since = condition_since(series, rule) if latest else None
            holds = since is not None and key in subjects and now_s - since >= rule.duration_s
            alert = open_alerts.get(key)
            if holds and alert is None:
                to_open.append(Alert(organization_id=rule.organization_id, rule=rule, deployment=subjects[key],
                                     state=AlertState.FIRING, started_at=datetime.fromtimestamp(since, tz=UTC),
                                     value=latest[1], last_notified_at=now))
            elif alert is not None and holds:
                if _renotify_due(alert, rule, now):
                    stats["renotified"] += _renotify(alert, rule, latest[1], now)
                elif alert.value != latest[1]:
                    alert.value = latest[1]
                    still_firing.append(alert)
            elif alert is not None and since is None and (latest is None or not scraped or cleared_for(
                    series, rule, now_s) >= settings.ALERTS_RESOLVE_AFTER_S):
                # Cleared: the deployment stopped reporting, or the condition has failed for a while (flapping
                # around the threshold is damped: one dip below it does not resolve and re-fire the incident).
                stats["resolved"] += _resolve(alert, rule, latest[1] if latest else alert.value, now)
    stats["fired"] = _open(to_open, now)
    # The latest value of incidents that stay open is informative only: one batched write, no row locks.
    Alert.objects.bulk_update(still_firing, ["value"], batch_size=1000)
    return stats


def _open(alerts: list[Alert], now: datetime) -> int:
    """Opens the incidents and records their trigger notifications in one transaction. A concurrent evaluator may
    have opened some first: the one-open-incident constraints make those inserts no-ops, and only the incidents
    inserted here (ids are made before the insert, so they can be looked up) are notified."""
    if not alerts:
        return 0
    with transaction.atomic():
        Alert.objects.bulk_create(alerts, ignore_conflicts=True, batch_size=1000)
        inserted = set(Alert.objects.filter(pk__in=[a.pk for a in alerts]).values_list("pk", flat=True))
        opened = [a for a in alerts if a.pk in inserted]
        alerts_notify(alerts=opened, kind=NotificationKind.TRIGGER, now=now)
    return len(opened)


def _renotify_due(alert: Alert, rule: AlertRule, now: datetime) -> bool:
    return bool(rule.repeat_interval_s) and (
        alert.last_notified_at is None or (now - alert.last_notified_at).total_seconds() >= rule.repeat_interval_s)


def _renotify(alert: Alert, rule: AlertRule, value: float, now: datetime) -> int:
    with transaction.atomic():
        # Re-checked under the lock: a concurrent evaluator may have just re-notified or resolved it.
        deployment, alert = alert.deployment, lock_row(Alert, alert.pk)
        if alert.state != AlertState.FIRING or not _renotify_due(alert, rule, now):
            return 0
        alert.rule, alert.deployment = rule, deployment  # the pass's, with the rule's channels prefetched
        alert.value, alert.last_notified_at = value, now
        alerts_notify(alerts=[alert], kind=NotificationKind.TRIGGER, now=now)
        alert.save(update_fields=["value", "last_notified_at"])
    return 1


def _resolve(alert: Alert, rule: AlertRule, value: float, now: datetime) -> int:
    with transaction.atomic():
        deployment, alert = alert.deployment, lock_row(Alert, alert.pk)
        if alert.state != AlertState.FIRING:
            return 0
        alert.rule, alert.deployment = rule, deployment
        alert.state, alert.resolved_at, alert.value = AlertState.RESOLVED, now, value
        alert.save(update_fields=["state", "resolved_at", "value"])
        alerts_notify(alerts=[alert], kind=NotificationKind.RESOLVE, now=now)
    return 1
