"""Audited writes of maintenance windows, exclusions and "defer once". Each write locks its owner (the
deployment or the project) so two concurrent exclusions cannot both pass the overlap check."""

from __future__ import annotations

import datetime as dt
from typing import cast

from django.db import transaction
from django.utils import timezone

from controlplane import errors
from controlplane.db import lock_row
from deployments.maintenance import selectors, validation
from deployments.maintenance.selectors import Owner
from deployments.models import Deployment, MaintenanceDeferral, MaintenanceExclusion, MaintenanceWindow
from deployments.models import DeploymentStatus as S
from projects.audit import audit_record
from projects.models import Project
from projects.roles import Perm
from projects.tenancy import Principal


def _locked_deployment(principal: Principal, deployment: Deployment) -> Deployment:
    principal.require(Perm.DEPLOYMENTS_WRITE)
    locked = cast(Deployment, lock_row(Deployment, deployment.pk, organization=principal.organization))
    if locked.status in (S.DELETING, S.DELETED):
        raise errors.Conflict(f"The deployment is {locked.status}.")
    return locked


def _locked_owner(principal: Principal, owner: Owner) -> Owner:
    """The owner locked until the transaction ends, after checking the principal may change it."""
    if isinstance(owner, Deployment):
        return _locked_deployment(principal, owner)
    principal.require(Perm.PROJECTS_WRITE)
    return cast(Project, lock_row(Project, owner.pk, organization=principal.organization))


def _action(owner: Owner, verb: str) -> str:
    return f"{'deployment' if isinstance(owner, Deployment) else 'project'}.maintenance_{verb}"


def _window_changes(window: MaintenanceWindow) -> dict[str, object]:
    return {"weekday": window.get_weekday_display(), "start_time": f"{window.start_time:%H:%M}",
            "length_minutes": window.length_minutes, "time_zone": window.time_zone}


def maintenance_window_put(*, principal: Principal, owner: Owner, weekday: object, start_time: object,
                           length_minutes: object, time_zone: object) -> MaintenanceWindow:
    """Sets the owner's window (a project's is the default of its deployments without their own). A deployment's
    new window cancels its deferral: the deferred occurrence belonged to the old one."""
    values = validation.window_clean(weekday=weekday, start_time=start_time, length_minutes=length_minutes,
                                     time_zone=time_zone)
    with transaction.atomic():
        locked = _locked_owner(principal, owner)
        window = selectors.own_window(owner=locked) or MaintenanceWindow(
            organization=principal.organization, **selectors.owner_filter(locked))
        before = None if window._state.adding else _window_changes(window)
        window.weekday, window.start_time = values.weekday, values.start_time
        window.length_minutes, window.time_zone = values.length_minutes, values.time_zone
        window.save()
        if isinstance(locked, Deployment):
            MaintenanceDeferral.objects.filter(deployment=locked).delete()
        audit_record(principal=principal, action=_action(locked, "window.update"), target=locked,
                     changes={"before": before, "after": _window_changes(window)})
    return window


def maintenance_window_delete(*, principal: Principal, owner: Owner) -> None:
    """Removes the owner's own window: a deployment inherits its project's again; a project has no default."""
    with transaction.atomic():
        locked = _locked_owner(principal, owner)
        window = selectors.own_window(owner=locked)
        if window is None:
            return
        before = _window_changes(window)
        window.delete()
        if isinstance(locked, Deployment):
            MaintenanceDeferral.objects.filter(deployment=locked).delete()
        audit_record(principal=principal, action=_action(locked, "window.delete"), target=locked,
                     changes={"before": before})


def maintenance_exclusion_create(*, principal: Principal, owner: Owner, start_date: dt.date, end_date: dt.date,
                                 reason: str = "") -> MaintenanceExclusion:
    with transaction.atomic():
        locked = _locked_owner(principal, owner)
        existing = [(other.start_date, other.end_date) for other in selectors.exclusion_list(owner=locked)]
        validation.exclusion_clean(start_date=start_date, end_date=end_date, reason=reason, existing=existing)
        exclusion = MaintenanceExclusion.objects.create(
            organization=principal.organization, start_date=start_date, end_date=end_date, reason=reason,
            **selectors.owner_filter(locked))
        audit_record(principal=principal, action=_action(locked, "exclusion.create"), target=locked,
                     changes={"id": exclusion.pk, "start_date": start_date.isoformat(),
                              "end_date": end_date.isoformat(), "reason": reason})
    return exclusion


def maintenance_exclusion_delete(*, principal: Principal, owner: Owner, exclusion: MaintenanceExclusion) -> None:
    with transaction.atomic():
        locked = _locked_owner(principal, owner)
        deleted, _ = selectors.exclusion_list(owner=locked).filter(pk=exclusion.pk).delete()
        if deleted:
            audit_record(principal=principal, action=_action(locked, "exclusion.delete"), target=locked,
                         changes={"id": exclusion.pk, "start_date": exclusion.start_date.isoformat(),
                                  "end_date": exclusion.end_date.isoformat(), "reason": exclusion.reason})


def maintenance_defer(*, principal: Principal, deployment: Deployment,
                      now: dt.datetime | None = None) -> MaintenanceDeferral:
    """Skips the deployment's next occurrence, once. Deferring again while that occurrence is still ahead
    changes nothing (a retried request must not skip a second week). 409 without a window."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _locked_deployment(principal, deployment)
        schedule = selectors.schedule_get(owner=locked, now=now, count=1)
        current = MaintenanceDeferral.objects.filter(deployment=locked).first()
        if current is not None and schedule.deferred_start is not None:
            return current
        if schedule.window is None:
            raise errors.Conflict("The deployment has no maintenance window (nor does its project) to defer.")
        if not schedule.occurrences:
            raise errors.Conflict("No occurrence ahead to defer: exclusions cover the coming years.")
        skipped = schedule.occurrences[0].start
        deferral, _ = MaintenanceDeferral.objects.update_or_create(
            deployment=locked, defaults={"occurrence_start": skipped, "created_at": now})
        audit_record(principal=principal, action="deployment.maintenance_window.defer", target=locked,
                     changes={"skipped_occurrence_start": skipped.isoformat()})
    return deferral
