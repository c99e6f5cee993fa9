"""The console's maintenance window pages: a deployment's (its own window or its project's, its exclusions,
"defer once") and a project's (the default its deployments inherit). Selectors read, services write; a bad
value comes back from the service as a field error and is shown next to its field."""

from __future__ import annotations

import datetime as dt
from functools import cached_property
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from controlplane import errors
from deployments import selectors as deployment_selectors
from deployments.console import forms as deployment_forms
from deployments.maintenance import selectors, services
from deployments.maintenance.selectors import Owner
from deployments.models import Deployment
from projects import facade as project_facade
from projects.console.base import OrganizationConsoleView
from projects.roles import Perm

#: The form a POST is for (its ``form`` field) and what a success says.
_DONE = {"window": "Maintenance window saved.", "exclusion": "Exclusion added.",
         "exclusion-delete": "Exclusion deleted.", "window-delete": "Own maintenance window removed.",
         "defer": "The next occurrence is skipped, once."}


def _place_errors(form: forms.Form, exc: errors.DomainError) -> None:
    """A service's field errors next to the fields of the same name; anything else above the form."""
    placed = False
    for field, field_messages in exc.errors.items():
        if field in form.fields:
            form.add_error(field, list(field_messages))
            placed = True
    if not placed:
        form.add_error(None, exc.detail)


def _local_label(start: dt.datetime, end: dt.datetime) -> str:
    """An occurrence in its window's time zone, formatted here: the template's date filter would convert it to
    the site's time zone."""
    return f"{start:%a} {start.day} {start:%b %Y, %H:%M}–{end:%H:%M} (UTC{start:%z})"


class MaintenanceView(OrganizationConsoleView):
    template_name = "console/deployments/maintenance.html"
    write_perm = Perm.DEPLOYMENTS_WRITE

    @cached_property
    def owner(self) -> Owner:
        raise NotImplementedError

    def window_initial(self) -> dict[str, Any]:
        window = selectors.schedule_get(owner=self.owner).window
        if window is None:
            return {"weekday": "sunday", "start_time": "03:00", "length_minutes": 120, "time_zone": "UTC"}
        return {"weekday": window.get_weekday_display().lower(), "start_time": f"{window.start_time:%H:%M}",
                "length_minutes": window.length_minutes, "time_zone": window.time_zone}

    def context(self, window_form: forms.Form | None = None,
                exclusion_form: forms.Form | None = None) -> dict[str, Any]:
        schedule = selectors.schedule_get(owner=self.owner)
        zone = selectors.window_rule(schedule.window).zone if schedule.window else None
        window_form = window_form or deployment_forms.MaintenanceWindowForm(initial=self.window_initial())
        if not self.principal.has(self.write_perm):
            for field in window_form.fields.values():  # shown to read, not offered to change
                field.disabled = True
        return {
            "owner": self.owner, "is_deployment": isinstance(self.owner, Deployment),
            "schedule": schedule, "can_write": self.principal.has(self.write_perm),
            "occurrences": [{"start": o.start, "local": _local_label(*o.local(zone))}
                            for o in schedule.occurrences] if zone else [],
            "own_exclusions": selectors.exclusion_list(owner=self.owner),
            "has_own_window": selectors.own_window(owner=self.owner) is not None,
            "window_form": window_form,
            "exclusion_form": exclusion_form or deployment_forms.MaintenanceExclusionForm(),
            "planned": (list(selectors.planned_maintenance_of(deployment=self.owner)[:10])
                        if isinstance(self.owner, Deployment) else []),
        }

    def get(self, request: HttpRequest, **kwargs: str) -> HttpResponse:
        return self.render_page(self.context())

    def post(self, request: HttpRequest, **kwargs: str) -> HttpResponse:
        self.principal.require(self.write_perm)
        which = request.POST.get("form", "")
        window_form = exclusion_form = None
        try:
            if which == "window":
                window_form = deployment_forms.MaintenanceWindowForm(request.POST)
                if not window_form.is_valid():
                    return self.render_page(self.context(window_form=window_form), status=400)
                services.maintenance_window_put(principal=self.principal, owner=self.owner,
                                                **window_form.cleaned_data)
            elif which == "exclusion":
                exclusion_form = deployment_forms.MaintenanceExclusionForm(request.POST)
                if not exclusion_form.is_valid():
                    return self.render_page(self.context(exclusion_form=exclusion_form), status=400)
                services.maintenance_exclusion_create(principal=self.principal, owner=self.owner,
                                                      **exclusion_form.cleaned_data)
            elif which == "exclusion-delete":
                exclusion = selectors.exclusion_get(owner=self.owner, exclusion_id=request.POST.get("exclusion", ""))
                services.maintenance_exclusion_delete(principal=self.principal, owner=self.owner,
                                                      exclusion=exclusion)
            elif which == "window-delete":
                services.maintenance_window_delete(principal=self.principal, owner=self.owner)
            elif which == "defer" and isinstance(self.owner, Deployment):
                services.maintenance_defer(principal=self.principal, deployment=self.owner)
            else:
                raise errors.ValidationFailed("Unknown form.")
        except (errors.NotFound, errors.PermissionDenied):
            raise
        except errors.DomainError as exc:
            form = window_form or exclusion_form
            if form is None:
                messages.error(request, exc.detail)
                return redirect(request.path)
            _place_errors(form, exc)
            return self.render_page(self.context(window_form=window_form, exclusion_form=exclusion_form),
                                    status=400)
        messages.success(request, _DONE[which])
        return redirect(request.path)


class DeploymentMaintenanceView(MaintenanceView):
    @cached_property
    def owner(self) -> Owner:
        return deployment_selectors.deployment_get(principal=self.principal,
                                                   deployment_id=self.kwargs["deployment_id"])


class ProjectMaintenanceView(MaintenanceView):
    write_perm = Perm.PROJECTS_WRITE

    @cached_property
    def owner(self) -> Owner:
        return project_facade.project_get(principal=self.principal, project_id=self.kwargs["project_id"])
