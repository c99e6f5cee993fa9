"""Reads of maintenance windows. Deployments and projects come already scoped to the principal (the API's
tenancy base, ``deployments.selectors``, ``projects.selectors``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils import timezone

from controlplane import errors
from deployments.maintenance.schedule import DateRange, Occurrence, WindowRule, next_occurrences
from deployments.models import (
    Deployment,
    MaintenanceDeferral,
    MaintenanceExclusion,
    MaintenanceWindow,
    PlannedMaintenance,
    PlannedMaintenanceStatus,
)
from projects.models import Project

#: How many occurrences the API and the console show.
SHOWN_OCCURRENCES = 3

Owner = Deployment | Project


@dataclass(frozen=True)
class Schedule:
    """What governs an owner's maintenance: its window (own or inherited; None when neither the deployment nor
    its project has one), the exclusions in force, the deferred occurrence and the next occurrences."""

    window: MaintenanceWindow | None
    inherited: bool
    exclusions: list[MaintenanceExclusion]
    deferred_start: dt.datetime | None
    occurrences: list[Occurrence]

    @property
    def source(self) -> str | None:
        if self.window is None:
            return None
        return "project" if self.window.project_id else "deployment"


def owner_filter(owner: Owner) -> dict[str, Owner]:
    """The rows of ``owner``: ``{"deployment": owner}`` or ``{"project": owner}``."""
    return {"deployment": owner} if isinstance(owner, Deployment) else {"project": owner}


def window_rule(window: MaintenanceWindow) -> WindowRule:
    return WindowRule(weekday=window.weekday, start=window.start_time, length_minutes=window.length_minutes,
                      time_zone=window.time_zone)


def own_window(*, owner: Owner) -> MaintenanceWindow | None:
    return MaintenanceWindow.objects.filter(**owner_filter(owner)).first()


def exclusion_list(*, owner: Owner) -> QuerySet[MaintenanceExclusion]:
    return MaintenanceExclusion.objects.filter(**owner_filter(owner)).order_by("start_date", "id")


def exclusion_get(*, owner: Owner, exclusion_id: str) -> MaintenanceExclusion:
    exclusion = exclusion_list(owner=owner).filter(pk=exclusion_id).first()
    if exclusion is None:
        raise errors.NotFound(f"No maintenance exclusion {exclusion_id} here.")
    return exclusion


def schedule_get(*, owner: Owner, now: dt.datetime | None = None, count: int = SHOWN_OCCURRENCES) -> Schedule:
    """The owner's schedule from ``now`` (default: the present). A deployment without a window of its own
    inherits its project's; its project's exclusions apply to it as well as its own."""
    now = now or timezone.now()
    window = own_window(owner=owner)
    inherited = False
    exclusions = list(exclusion_list(owner=owner))
    deferred_start = None
    if isinstance(owner, Deployment):
        if window is None:
            window = own_window(owner=owner.project)
            inherited = window is not None
        exclusions = sorted([*exclusions, *exclusion_list(owner=owner.project)],
                            key=lambda exclusion: (exclusion.start_date, exclusion.pk))
        deferral = MaintenanceDeferral.objects.filter(deployment=owner).first()
        deferred_start = deferral.occurrence_start if deferral and deferral.occurrence_start >= now else None
    occurrences: list[Occurrence] = []
    if window is not None:
        occurrences = next_occurrences(
            window_rule(window), after=now, count=count, skipped_start=deferred_start,
            exclusions=[DateRange(exclusion.start_date, exclusion.end_date) for exclusion in exclusions])
    return Schedule(window=window, inherited=inherited, exclusions=exclusions, deferred_start=deferred_start,
                    occurrences=occurrences)


#: How far ahead the console's banner looks.
BANNER_HORIZON = dt.timedelta(days=7)


def planned_maintenance_upcoming(*, organization_id: str, now: dt.datetime | None = None,
                                 within: dt.timedelta = BANNER_HORIZON) -> list[PlannedMaintenance]:
    """The organization's announced platform maintenance starting within ``within``, for the console's banner."""
    now = now or timezone.now()
    return list(PlannedMaintenance.objects.filter(
        organization_id=organization_id, status=PlannedMaintenanceStatus.ANNOUNCED,
        window_start__lte=now + within).select_related("deployment").order_by("window_start"))


def planned_maintenance_of(*, deployment: Deployment) -> QuerySet[PlannedMaintenance]:
    """A deployment's platform maintenance, newest window first (the API and the console)."""
    return PlannedMaintenance.objects.filter(deployment=deployment).order_by("-window_start", "-created_at")
