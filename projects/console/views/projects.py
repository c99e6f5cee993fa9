"""Console pages of the organization's projects: the list (the console's home), create, edit, delete."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from projects import selectors
from projects.console import forms as console_forms
from projects.console.base import (
    OrganizationConsoleView,
    OrganizationFormView,
)
from projects.models import Project
from projects.roles import Perm
from projects.services.projects import project_create, project_delete, project_update
from projects.tenancy import Principal


class ProjectListView(OrganizationConsoleView):
    template_name = "console/projects.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        projects = selectors.project_list(principal=self.principal).order_by("name")
        # Creating and deleting projects shape the organization: not for principals limited to projects.
        can_create = self.principal.has(Perm.PROJECTS_WRITE) and not self.principal.is_project_limited
        return self.render_page({"projects": projects, "can_create": can_create, "can_delete": can_create})


class ProjectCreateView(OrganizationFormView):
    template_name = "console/project_form.html"
    form_class = console_forms.ProjectForm
    required_perm = Perm.PROJECTS_WRITE
    organization_wide = True

    def form_valid(self, form: forms.Form) -> HttpResponse:
        project = project_create(principal=self.principal, **form.cleaned_data)
        messages.success(self.request, f"Project {project.name} created.")
        return redirect("console:home")


class _ProjectObjectMixin:
    principal: Principal
    kwargs: dict[str, Any]

    @cached_property
    def project(self) -> Project:
        return selectors.project_get(principal=self.principal, project_id=self.kwargs["project_id"])

    def get_context(self, form: forms.Form) -> dict[str, Any]:
        return {"form": form, "project": self.project}


class ProjectEditView(_ProjectObjectMixin, OrganizationFormView):
    template_name = "console/project_form.html"
    form_class = console_forms.ProjectForm
    required_perm = Perm.PROJECTS_WRITE

    def get_form_kwargs(self) -> dict[str, Any]:
        return {"initial": {"name": self.project.name, "description": self.project.description}}

    def form_valid(self, form: forms.Form) -> HttpResponse:
        project = project_update(principal=self.principal, project=self.project, **form.cleaned_data)
        messages.success(self.request, f"Project {project.name} saved.")
        return redirect("console:home")


class ProjectDeleteView(_ProjectObjectMixin, OrganizationFormView):
    template_name = "console/project_delete.html"
    form_class = forms.Form  # a confirmation: nothing to fill in
    required_perm = Perm.PROJECTS_WRITE
    organization_wide = True

    def form_valid(self, form: forms.Form) -> HttpResponse:
        project_delete(principal=self.principal, project=self.project)
        messages.success(self.request, f"Project {self.project.name} deleted.")
        return redirect("console:home")
