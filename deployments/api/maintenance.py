"""API of maintenance windows: ``/deployments/{id}/maintenance-window[/defer]``,
``/deployments/{id}/planned-maintenance`` (the platform's own, read only),
``/deployments/{id}/maintenance-exclusions[/{exclusion_id}]`` and the same two under ``/projects/{id}`` (a
project's window is the default of its deployments without their own). Two viewsets of their own on the
``deployments`` and ``projects`` prefixes (detail actions only), so the deployment or project is looked up,
scoped and permission-checked by the tenancy base like every other route."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.api.serializers import InputSerializer
from deployments import selectors as deployment_selectors
from deployments.maintenance import selectors, services
from deployments.maintenance.selectors import Owner, Schedule
from deployments.maintenance.validation import EXCLUSION_MAX_DAYS, LENGTH_MAX_MINUTES, REASON_MAX, WEEKDAYS
from deployments.models import MaintenanceExclusion, PlannedMaintenance
from projects import facade as project_facade
from projects.api.base import OrganizationScopedViewSet
from projects.roles import Perm
from projects.tenancy import Principal


# --- serializers: shapes only; the services validate the values and answer field errors ---------------
class MaintenanceWindowIn(InputSerializer):
    weekday = serializers.JSONField(help_text=f"One of {', '.join(WEEKDAYS)}.")
    start_time = serializers.JSONField(help_text="Local wall time in `time_zone`, `HH:MM` (24-hour). Kept across "
                                                 "daylight saving changes; a time the clock skips starts as much "
                                                 "later, a time it repeats starts the first time.")
    length_minutes = serializers.JSONField(help_text=f"1 to {LENGTH_MAX_MINUTES} (24 hours).")
    time_zone = serializers.JSONField(help_text="An IANA time zone name, e.g. `Europe/Berlin`.")


class OccurrenceOut(serializers.Serializer):
    start = serializers.DateTimeField(help_text="UTC.")
    end = serializers.DateTimeField(help_text="UTC.")
    local_start = serializers.CharField(help_text="In the window's time zone, RFC 3339 with its offset.")
    local_end = serializers.CharField(help_text="In the window's time zone, RFC 3339 with its offset.")


class MaintenanceExclusionIn(InputSerializer):
    start_date = serializers.DateField(help_text="The first excluded day, in the window's time zone.")
    end_date = serializers.DateField(help_text=f"The last excluded day (included); at most {EXCLUSION_MAX_DAYS} "
                                               "days after the first. Exclusions of one owner never overlap.")
    reason = serializers.CharField(max_length=REASON_MAX, allow_blank=True, default="",
                                   help_text="e.g. \"retail freeze\".")


class MaintenanceExclusionOut(serializers.ModelSerializer):
    scope = serializers.SerializerMethodField(help_text='"project" or "deployment": whose exclusion it is.')

    class Meta:
        model = MaintenanceExclusion
        fields = ["id", "start_date", "end_date", "reason", "scope", "created_at"]

    def get_scope(self, exclusion: MaintenanceExclusion) -> str:
        return "project" if exclusion.project_id else "deployment"


class MaintenanceExclusionsOut(serializers.Serializer):
    results = MaintenanceExclusionOut(many=True)
    next = serializers.CharField(allow_null=True, help_text="Always null: an owner has few exclusions.")


class PlannedMaintenanceOut(serializers.ModelSerializer):
    class Meta:
        model = PlannedMaintenance
        fields = ["id", "kind", "summary", "status", "window_start", "window_end", "announce_at", "announced_at",
                  "must_start_by", "started_at", "finished_at", "error", "history"]


class PlannedMaintenanceListOut(serializers.Serializer):
    results = PlannedMaintenanceOut(many=True)
    next = serializers.CharField(allow_null=True)


class MaintenanceWindowOut(serializers.Serializer):
    weekday = serializers.CharField(allow_null=True, help_text="Null when no window applies.")
    start_time = serializers.CharField(allow_null=True)
    length_minutes = serializers.IntegerField(allow_null=True)
    time_zone = serializers.CharField(allow_null=True)
    inherited = serializers.BooleanField(help_text="The project's window, the deployment having none of its own.")
    # The stubs type ``Field.source`` (the attribute a field reads) as a string; this field is named "source".
    source = serializers.CharField(  # type: ignore[assignment]
        allow_null=True, help_text='"deployment", "project", or null (no window).')
    deferred_occurrence_start = serializers.DateTimeField(
        allow_null=True, help_text="The occurrence skipped once (`POST …/maintenance-window/defer`), UTC.")
    exclusions = MaintenanceExclusionOut(many=True, help_text="In force: a deployment's and its project's.")
    next_occurrences = OccurrenceOut(many=True, help_text="The next three, exclusions and deferral applied.")


def schedule_out(schedule: Schedule) -> dict[str, Any]:
    window = schedule.window
    zone = selectors.window_rule(window).zone if window else None
    occurrences = []
    for occurrence in schedule.occurrences:
        local_start, local_end = occurrence.local(zone)  # type: ignore[arg-type]  # occurrences need a window
        occurrences.append({"start": occurrence.start, "end": occurrence.end,
                            "local_start": local_start.isoformat(), "local_end": local_end.isoformat()})
    body = {
        "weekday": window.get_weekday_display().lower() if window else None,
        "start_time": f"{window.start_time:%H:%M}" if window else None,
        "length_minutes": window.length_minutes if window else None,
        "time_zone": window.time_zone if window else None,
        "inherited": schedule.inherited, "source": schedule.source,
        "deferred_occurrence_start": schedule.deferred_start,
        "exclusions": schedule.exclusions, "next_occurrences": occurrences,
    }
    return MaintenanceWindowOut(body).data


class MaintenanceRoutes(OrganizationScopedViewSet):
    """The routes both owners have; ``write_perm`` is what changing them takes."""

    write_perm: str = Perm.DEPLOYMENTS_WRITE

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.permission_by_action = {name: cls.write_perm for name in (
            "maintenance_window_put", "maintenance_window_delete", "maintenance_exclusions_create",
            "maintenance_exclusions_member_delete", "maintenance_window_defer")}

    def _render(self) -> Response:
        return Response(schedule_out(selectors.schedule_get(owner=self.get_object())))

    @extend_schema(responses=MaintenanceWindowOut, description="The window in force (own or inherited), the "
                   "exclusions in force and the next three occurrences in UTC and in the window's time zone.")
    @action(detail=True, methods=["get"], url_path="maintenance-window")
    def maintenance_window(self, request: Request, pk: str) -> Response:
        return self._render()

    @extend_schema(request=MaintenanceWindowIn, responses=MaintenanceWindowOut,
                   description="Sets the window (audited). 400 with field errors for an unknown weekday or time "
                               "zone, a start time not `HH:MM`, a length of zero or over 24 hours.")
    @maintenance_window.mapping.put
    def maintenance_window_put(self, request: Request, pk: str) -> Response:
        owner = self.get_object()
        data = MaintenanceWindowIn(data=request.data)
        data.is_valid(raise_exception=True)
        services.maintenance_window_put(principal=self.principal, owner=owner, **data.validated_data)
        return self._render()

    @extend_schema(request=None, responses={204: None},
                   description="Removes the own window: a deployment inherits its project's again.")
    @maintenance_window.mapping.delete
    def maintenance_window_delete(self, request: Request, pk: str) -> Response:
        services.maintenance_window_delete(principal=self.principal, owner=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=MaintenanceExclusionsOut,
                   description="This owner's own exclusions (a deployment's window also skips its project's).")
    @action(detail=True, methods=["get"], url_path="maintenance-exclusions", pagination_class=None)
    def maintenance_exclusions(self, request: Request, pk: str) -> Response:
        exclusions = selectors.exclusion_list(owner=self.get_object())
        return Response({"results": MaintenanceExclusionOut(exclusions, many=True).data, "next": None})

    @extend_schema(request=MaintenanceExclusionIn, responses={201: MaintenanceExclusionOut},
                   description="No window opens on these days (audited). 400 when it ends before it starts, lasts "
                               f"over {EXCLUSION_MAX_DAYS} days or overlaps another exclusion of this owner.")
    @maintenance_exclusions.mapping.post
    def maintenance_exclusions_create(self, request: Request, pk: str) -> Response:
        owner = self.get_object()
        data = MaintenanceExclusionIn(data=request.data)
        data.is_valid(raise_exception=True)
        exclusion = services.maintenance_exclusion_create(principal=self.principal, owner=owner,
                                                          **data.validated_data)
        return Response(MaintenanceExclusionOut(exclusion).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={204: None}, description="Deletes one of this owner's exclusions "
                   "(audited); a project's exclusion is not a deployment's to delete (404).")
    @action(detail=True, methods=["delete"], url_path=r"maintenance-exclusions/(?P<exclusion_id>[^/]+)")
    def maintenance_exclusions_member_delete(self, request: Request, pk: str, exclusion_id: str) -> Response:
        owner: Owner = self.get_object()
        exclusion = selectors.exclusion_get(owner=owner, exclusion_id=exclusion_id)
        services.maintenance_exclusion_delete(principal=self.principal, owner=owner, exclusion=exclusion)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeploymentMaintenanceViewSet(MaintenanceRoutes):
    """A deployment's maintenance window (its own, or its project's) and exclusions, and "defer once"."""

    write_perm = Perm.DEPLOYMENTS_WRITE

    def scoped_queryset(self, principal: Principal) -> QuerySet:
        return deployment_selectors.deployment_list(principal=principal)

    @extend_schema(request=None, responses=MaintenanceWindowOut,
                   description="Skips the next occurrence, once (audited); repeating it while that occurrence is "
                               "still ahead changes nothing. 409 when no window applies.")
    @action(detail=True, methods=["post"], url_path="maintenance-window/defer")
    def maintenance_window_defer(self, request: Request, pk: str) -> Response:
        services.maintenance_defer(principal=self.principal, deployment=self.get_object())
        return self._render()

    @extend_schema(responses=PlannedMaintenanceListOut, description="Maintenance the platform plans on this "
                   "deployment (a certificate rotation, a forced upgrade), newest first: the window occurrence it "
                   "goes into (announced a week ahead; moved to the next occurrence when this one is deferred or "
                   "excluded), its status and every transition.")
    @action(detail=True, methods=["get"], url_path="planned-maintenance", pagination_class=None)
    def planned_maintenance(self, request: Request, pk: str) -> Response:
        planned = selectors.planned_maintenance_of(deployment=self.get_object())[:50]
        return Response({"results": PlannedMaintenanceOut(planned, many=True).data, "next": None})


class ProjectMaintenanceViewSet(MaintenanceRoutes):
    """A project's default maintenance window and its exclusions, which apply to all its deployments."""

    write_perm = Perm.PROJECTS_WRITE

    def scoped_queryset(self, principal: Principal) -> QuerySet:
        return project_facade.project_list(principal=principal)
