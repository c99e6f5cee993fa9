"""Maintenance the platform starts itself, kept inside the deployment's maintenance windows (issue 18, item 2).

An operator (or the platform) plans work on a deployment (``planned_maintenance_plan``): it goes into the first
occurrence of the deployment's window at least ``NOTICE`` ahead (a deployment without a window of its own or
of its project gets the platform's, ``PLATFORM_WINDOW``), exclusions and a deferral honoured. The pass
(``planned_maintenance_pass``, a beat job every few minutes) then

1. announces it ``NOTICE`` before the occurrence: ``hooks.planned_maintenance`` (alerts emails the owners and
   admins and sends a ``notice`` to every enabled alert channel); the console shows a banner from then on;
2. starts it inside that occurrence only: if the occurrence no longer exists when it comes (the customer
   deferred it, added an exclusion, moved the window) the work moves to the next one and is announced again;
   past ``must_start_by`` it runs at once (the announcement said so);
3. runs the kind's executor (``EXECUTORS``) and records the outcome.

Every transition is appended to ``history`` and announced through the hook with its phase. The pass is
idempotent: each step moves a row from one status to the next under its lock.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from controlplane import errors
from controlplane.queue import enqueue_on_commit
from deployments import hooks
from deployments.maintenance.schedule import DateRange, Occurrence, WindowRule, next_occurrences
from deployments.maintenance.selectors import schedule_get, window_rule
from deployments.models import Deployment, DeploymentStatus, PlannedMaintenance, PlannedMaintenanceKind
from deployments.models import PlannedMaintenanceStatus as PM
from deployments.tls.selectors import server_certificate_of
from deployments.tls.services import issue_for_deployment
from deployments.upgrades.models import BrokerVersion, BrokerVersionStatus, UpgradeWhen
from deployments.upgrades.plan import upgrade_targets
from deployments.upgrades.services import upgrade_request
from projects.audit import audit_record
from projects.tenancy import Principal

logger = logging.getLogger(__name__)

#: How long ahead people are told.
NOTICE = dt.timedelta(days=7)
#: The window of a deployment whose customer set none: Sundays 02:00-06:00 UTC.
PLATFORM_WINDOW = WindowRule(weekday=6, start=dt.time(2, 0), length_minutes=240, time_zone="UTC")
OPEN = (PM.SCHEDULED, PM.ANNOUNCED, PM.RUNNING)
#: Statuses in which a deployment can take the work; in any other (being created, scaled, ...) it waits.
SETTLED = (DeploymentStatus.RUNNING, DeploymentStatus.STOPPED)
REPAIR_TASK = "deployments.tasks.deployment_repair"

Executor = Callable[[Deployment, dict[str, Any]], None]


def _rotate_certificate(deployment: Deployment, details: dict[str, Any]) -> None:
    """A new key and certificate from the region's active CA, applied by the repair (the brokers restart one at
    a time to load it)."""
    current = server_certificate_of(deployment)
    if current is None:
        return  # nothing served over TLS yet: the first certificate is issued with the deployment's address
    issue_for_deployment(deployment=deployment, host=current.host, force=True)
    enqueue_on_commit(REPAIR_TASK, deployment.id)


def _forced_upgrade(deployment: Deployment, details: dict[str, Any]) -> None:
    """Starts the upgrade off a deprecated version (``deployments.upgrades``: one node at a time, rolled back if
    a node does not come back), as its own operation; a deployment that is not running refuses it (409)."""
    upgrade_request(principal=Principal.for_system(deployment.organization), deployment=deployment,
                    version=details["version"], when=UpgradeWhen.NOW)


#: What each kind does once its window comes.
EXECUTORS: dict[str, Executor] = {PlannedMaintenanceKind.CERTIFICATE_ROTATION: _rotate_certificate,
                                  PlannedMaintenanceKind.BROKER_UPGRADE: _forced_upgrade}


def forced_upgrade_target(current: str, versions: list[BrokerVersion]) -> BrokerVersion | None:
    """Where a deployment on a deprecated version is moved: the newest supported version of its own major (a new
    major may change what clients see, so the platform never forces one while the old major has a version),
    else the newest of the next major; None when there is none."""
    targets = upgrade_targets(current, versions)
    same_major = [v for v in targets if v.version.split(".")[0] == current.split(".")[0]]
    chosen = same_major or targets
    return chosen[-1] if chosen else None


def forced_upgrades_plan(*, now: dt.datetime | None = None) -> int:
    """Plans an upgrade for every running deployment on a deprecated version that has none planned, before
    its end of support when it has one; returns how many it planned."""
    now = now or timezone.now()
    versions = list(BrokerVersion.objects.all())
    deprecated = {v.version: v for v in versions if v.status == BrokerVersionStatus.DEPRECATED}
    if not deprecated:
        return 0
    planned_already = PlannedMaintenance.objects.filter(kind=PlannedMaintenanceKind.BROKER_UPGRADE,
                                                        status__in=OPEN).values("deployment_id")
    due = (Deployment.objects.filter(status=DeploymentStatus.RUNNING, broker_version__in=list(deprecated))
           .exclude(pk__in=planned_already))
    count = 0
    for deployment in due:
        old = deprecated[deployment.broker_version]
        target = forced_upgrade_target(old.version, versions)
        if target is None:
            logger.warning("no version to move %s off deprecated EMQX %s", deployment.pk, old.version)
            continue
        deadline = (dt.datetime.combine(old.end_of_support, dt.time(), tzinfo=dt.UTC)
                    if old.end_of_support else None)
        ending = f" (end of support {old.end_of_support:%Y-%m-%d})" if old.end_of_support else ""
        planned_maintenance_plan(deployment=deployment, kind=PlannedMaintenanceKind.BROKER_UPGRADE,
                                 summary=f"Upgrade from EMQX {old.version}{ending} to {target.version}",
                                 details={"version": target.version, "from_version": old.version},
                                 must_start_by=deadline, now=now)
        count += 1
    return count


def occurrences_for(deployment: Deployment, *, after: dt.datetime, count: int = 1) -> list[Occurrence]:
    """The deployment's next ``count`` window occurrences starting at or after ``after``: its own or its
    project's window, else the platform's, with its exclusions and deferral."""
    schedule = schedule_get(owner=deployment, now=after, count=count)
    if schedule.window is not None:
        return schedule.occurrences
    return next_occurrences(PLATFORM_WINDOW, after=after, count=count, skipped_start=schedule.deferred_start,
                            exclusions=[DateRange(e.start_date, e.end_date) for e in schedule.exclusions])


def _window_of(deployment: Deployment) -> WindowRule:
    schedule = schedule_get(owner=deployment, count=0)
    return window_rule(schedule.window) if schedule.window is not None else PLATFORM_WINDOW


def _slot(deployment: Deployment, *, now: dt.datetime, must_start_by: dt.datetime | None) -> tuple[dt.datetime,
                                                                                                    dt.datetime]:
    """The occurrence the work goes into: the first one ``NOTICE`` ahead; with a deadline it cannot wait for,
    the first one at all; failing that, now (announced at once, the deadline named)."""
    for after in (now + NOTICE, now):
        found = occurrences_for(deployment, after=after)
        if found and (must_start_by is None or found[0].start <= must_start_by):
            return found[0].start, found[0].end
    length = _window_of(deployment).length
    return now, now + length


def _transition(planned: PlannedMaintenance, status: str, *, now: dt.datetime, note: str = "") -> None:
    planned.status = status
    planned.history = [*planned.history, {"status": status, "at": now.isoformat(), "note": note}]


def planned_maintenance_plan(*, deployment: Deployment, kind: str, summary: str, principal: Principal | None = None,
                             details: dict[str, Any] | None = None, must_start_by: dt.datetime | None = None,
                             now: dt.datetime | None = None) -> PlannedMaintenance:
    """Plans ``kind`` on ``deployment`` in its next window occurrence (see the module), for an operator
    (``principal``, audited) or the platform itself (None). Planning a kind that is already open returns that
    one unchanged (a retried request, a repeated beat pass)."""
    now = now or timezone.now()
    if kind not in EXECUTORS:
        raise errors.ValidationFailed("Unknown maintenance.", errors={"kind": [f"No maintenance of kind {kind}."]})
    with transaction.atomic():
        locked = Deployment.objects.select_for_update().get(pk=deployment.pk)
        if locked.status == DeploymentStatus.DELETED:
            raise errors.Conflict("The deployment is deleted.")
        existing = PlannedMaintenance.objects.filter(deployment=locked, kind=kind, status__in=OPEN).first()
        if existing is not None:
            return existing
        start, end = _slot(locked, now=now, must_start_by=must_start_by)
        planned = PlannedMaintenance(organization_id=locked.organization_id, deployment=locked, kind=kind,
                                     summary=summary, details=details or {}, window_start=start, window_end=end,
                                     announce_at=max(now, start - NOTICE), must_start_by=must_start_by,
                                     requested_by=principal.actor_label if principal else "platform")
        _transition(planned, PM.SCHEDULED, now=now, note=f"planned for {start.isoformat()}")
        planned.save()
        if principal is not None:
            audit_record(principal=principal, action="deployment.planned_maintenance.plan", target=locked,
                         changes={"id": planned.pk, "kind": kind, "window_start": start.isoformat()})
    return planned


def planned_maintenance_cancel(*, planned: PlannedMaintenance, principal: Principal,
                               now: dt.datetime | None = None) -> bool:
    """Cancels work that has not started (told to whoever was told it was coming; audited); False once it
    has."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = PlannedMaintenance.objects.select_for_update().get(pk=planned.pk)
        if locked.status not in (PM.SCHEDULED, PM.ANNOUNCED):
            return False
        was_announced = locked.status == PM.ANNOUNCED
        _transition(locked, PM.CANCELLED, now=now, note=f"cancelled by {principal.actor_label}")
        locked.finished_at = now
        locked.save(update_fields=["status", "history", "finished_at"])
        audit_record(principal=principal, action="deployment.planned_maintenance.cancel", target=locked.deployment,
                     changes={"id": locked.pk, "kind": locked.kind})
        if was_announced:
            hooks.planned_maintenance.send(planned=locked, phase="cancelled")
    return True


def _announce(planned: PlannedMaintenance, now: dt.datetime) -> None:
    planned.announced_at = now
    _transition(planned, PM.ANNOUNCED, now=now, note=f"announced for {planned.window_start.isoformat()}")
    planned.save(update_fields=["status", "history", "announced_at"])
    hooks.planned_maintenance.send(planned=planned, phase="announced")


def _still_in_window(planned: PlannedMaintenance, now: dt.datetime) -> bool:
    """Whether the occurrence the work was announced for is still one of the deployment's, and under way."""
    current = occurrences_for(planned.deployment, after=planned.window_start)
    return bool(current) and current[0].start == planned.window_start and now < planned.window_end


def _move(planned: PlannedMaintenance, now: dt.datetime) -> None:
    """To the deployment's first occurrence after the one that went, told again at once: whoever deferred or
    excluded the old one knows the work is due, so the new one needs no further week of notice."""
    following = occurrences_for(planned.deployment, after=max(now, planned.window_end))
    if following:
        start, end = following[0].start, following[0].end
    else:
        start, end = _slot(planned.deployment, now=now, must_start_by=planned.must_start_by)
    planned.window_start, planned.window_end = start, end
    planned.announce_at = now
    _transition(planned, PM.SCHEDULED, now=now,
                note=f"the occurrence went (deferred, excluded or moved): now {start.isoformat()}")
    planned.save(update_fields=["status", "history", "window_start", "window_end", "announce_at"])


def _run(planned: PlannedMaintenance, now: dt.datetime) -> None:
    """Runs the kind's executor in a savepoint of the caller's transaction (which holds the row's lock, so no
    other pass runs it too): a failure undoes the executor's writes only, and is recorded."""
    planned.started_at = now
    _transition(planned, PM.RUNNING, now=now)
    try:
        with transaction.atomic():
            EXECUTORS[planned.kind](planned.deployment, planned.details)
    except Exception as exc:  # noqa: BLE001 - recorded as the maintenance's failure, told, and left for people
        logger.exception("planned maintenance %s failed", planned.pk)
        planned.error = f"{type(exc).__name__}: {exc}"[:2000]
        planned.finished_at = timezone.now()
        _transition(planned, PM.FAILED, now=planned.finished_at, note=planned.error)
        planned.save(update_fields=["status", "history", "started_at", "finished_at", "error"])
        hooks.planned_maintenance.send(planned=planned, phase="failed")
        return
    planned.finished_at = timezone.now()
    _transition(planned, PM.DONE, now=planned.finished_at)
    planned.save(update_fields=["status", "history", "started_at", "finished_at"])
    hooks.planned_maintenance.send(planned=planned, phase="done")


def _step(planned_id: str, now: dt.datetime) -> str | None:
    """One row one step further, under its lock; what was done (None: nothing due)."""
    with transaction.atomic():
        planned = (PlannedMaintenance.objects.select_for_update(of=("self",)).select_related("deployment")
                   .filter(pk=planned_id, status__in=(PM.SCHEDULED, PM.ANNOUNCED)).first())
        if planned is None:
            return None
        if planned.deployment.status == DeploymentStatus.DELETED:
            _transition(planned, PM.CANCELLED, now=now, note="the deployment was deleted")
            planned.finished_at = now
            planned.save(update_fields=["status", "history", "finished_at"])
            return "cancelled"
        if planned.status == PM.SCHEDULED:
            if planned.announce_at > now:
                return None
            _announce(planned, now)
            return "announced"
        if planned.window_start > now:
            return None
        overdue = planned.must_start_by is not None and planned.must_start_by <= now
        if not overdue and not _still_in_window(planned, now):
            _move(planned, now)
            return "moved"
        if planned.deployment.status not in SETTLED:
            return None  # being changed right now: the next pass, still inside the window, takes it
        _run(planned, now)
    return "run"


def planned_maintenance_pass(*, now: dt.datetime | None = None) -> dict[str, int]:
    """The beat job: announce what is due, start what is inside its window, move what lost its occurrence."""
    now = now or timezone.now()
    due = PlannedMaintenance.objects.filter(status__in=(PM.SCHEDULED, PM.ANNOUNCED)).filter(
        announce_at__lte=now).values_list("pk", flat=True).order_by("window_start")
    counts: dict[str, int] = {}
    for planned_id in list(due):
        done = _step(planned_id, now)
        if done is not None:
            counts[done] = counts.get(done, 0) + 1
    return counts
