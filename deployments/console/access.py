"""The Access area of a deployment in the console: its MQTT users (the built-in authentication database) and
their import. Reads through ``deployments.mqtt_access.selectors``, writes through its services (which audit).

A password is shown once: in the response to the POST that created or reset it, marked not to be cached, and
never stored anywhere the page could show it again.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.cache import add_never_cache_headers

from controlplane import errors
from deployments import selectors as deployment_selectors
from deployments.console import access_forms
from deployments.console.connect import ca_download_url, connect_snippets
from deployments.console.views import describe_deployment
from deployments.models import Deployment, MqttUser
from deployments.mqtt_access import hashing, imports, selectors, services
from projects.console.base import OrganizationConsoleView, form_add_domain_error
from projects.roles import Perm
from projects.tenancy import Principal

USERS_PER_PAGE = 50
PREVIEW_LINES_MAX = 500
# Refusals that end on an error page rather than on the form.
_PAGE_ERRORS = (errors.NotFound, errors.PermissionDenied)


class AccessMixin:
    """The deployment (scoped to the principal's organization and projects: 404 otherwise) and what every
    Access page shows: the tabs and whether the latest change is live on the broker."""

    principal: Principal
    kwargs: dict[str, Any]
    access_tab: ClassVar[str] = "users"

    @cached_property
    def deployment(self) -> Deployment:
        deployment = deployment_selectors.deployment_get(principal=self.principal,
                                                         deployment_id=self.kwargs["deployment_id"])
        return describe_deployment(deployment)

    def access_context(self, **extra: Any) -> dict[str, Any]:
        access = selectors.mqtt_access_get(deployment=self.deployment)
        return {"deployment": self.deployment, "tab": self.access_tab, "access": access,
                "access_live": access.applied_generation >= access.generation, **extra}


# --- users ------------------------------------------------------------------------------------------
def password_shown_once(view: OrganizationConsoleView, *, deployment: Deployment, username: str,
                        password: str, created: bool) -> HttpResponse:
    snippets = connect_snippets(deployment.endpoints, tls_ready=ca_download_url(deployment) is not None,
                                username=username, password=password)
    response = view.render_page({"deployment": deployment, "username": username, "password": password,
                                 "created": created, "tab": "users", "snippets": snippets},
                                template_name="console/deployments/access/password.html")
    add_never_cache_headers(response)
    return response


class MqttUsersView(AccessMixin, OrganizationConsoleView):
    """The users, filtered by username and paged; the create form for those who may write."""

    template_name = "console/deployments/access/users.html"

    def context(self, form: forms.Form | None = None) -> dict[str, Any]:
        filter_form = access_forms.MqttUserFilterForm(self.request.GET, auto_id="filter_%s")
        username = filter_form.cleaned_data["username"] if filter_form.is_valid() else ""
        users = selectors.mqtt_user_list(deployment=self.deployment, username=username or None)
        page = Paginator(users, USERS_PER_PAGE).get_page(self.request.GET.get("page"))
        can_write = self.principal.has(Perm.DEPLOYMENTS_WRITE)
        return self.access_context(
            users=page, filter_form=filter_form, filtered=bool(username),
            form=(form or access_forms.MqttUserCreateForm()) if can_write else None)

    def get(self, request: HttpRequest, deployment_id: str) -> HttpResponse:
        return self.render_page(self.context())

    def post(self, request: HttpRequest, deployment_id: str) -> HttpResponse:
        self.principal.require(Perm.DEPLOYMENTS_WRITE)
        deployment = self.deployment
        form = access_forms.MqttUserCreateForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                user, generated = services.mqtt_user_create(
                    principal=self.principal, deployment=deployment, username=data["username"],
                    password=data["password"] or None, is_superuser=data["is_superuser"])
            except _PAGE_ERRORS:
                raise
            except errors.DomainError as exc:
                form_add_domain_error(form, exc)
            else:
                if generated is not None:
                    return password_shown_once(self, deployment=deployment, username=user.username,
                                               password=generated, created=True)
                messages.success(request, f"User {user.username} created.")
                return redirect("console:deployment-mqtt-users", deployment.id)
        return self.render_page(self.context(form), status=400)


class MqttUserView(AccessMixin, OrganizationConsoleView):
    """A change to one user; the user is looked up inside the (scoped) deployment."""

    required_perm = Perm.DEPLOYMENTS_WRITE

    def mqtt_user(self) -> MqttUser:
        return selectors.mqtt_user_get_by_id(deployment=self.deployment, user_id=self.kwargs["user_id"])


class MqttUserPasswordView(MqttUserView):
    template_name = "console/deployments/access/user_password.html"

    def get(self, request: HttpRequest, deployment_id: str, user_id: str) -> HttpResponse:
        return self.render_page(self.access_context(mqtt_user=self.mqtt_user(),
                                                    form=access_forms.MqttUserPasswordForm()))

    def post(self, request: HttpRequest, deployment_id: str, user_id: str) -> HttpResponse:
        user = self.mqtt_user()
        form = access_forms.MqttUserPasswordForm(request.POST)
        if form.is_valid():
            password = form.cleaned_data["password"] or hashing.generate_password()
            try:
                services.mqtt_user_update(principal=self.principal, deployment=self.deployment, user=user,
                                          password=password)
            except _PAGE_ERRORS:
                raise
            except errors.DomainError as exc:
                form_add_domain_error(form, exc)
            else:
                if not form.cleaned_data["password"]:
                    return password_shown_once(self, deployment=self.deployment, username=user.username,
                                               password=password, created=False)
                messages.success(request, f"The password of {user.username} was changed.")
                return redirect("console:deployment-mqtt-users", self.deployment.id)
        return self.render_page(self.access_context(mqtt_user=user, form=form), status=400)


class MqttUserSuperuserView(MqttUserView):
    http_method_names: ClassVar[list[str]] = ["post"]

    def post(self, request: HttpRequest, deployment_id: str, user_id: str) -> HttpResponse:
        user = self.mqtt_user()
        form = access_forms.MqttUserSuperuserForm(request.POST)
        form.is_valid()  # a checkbox: absent means off
        superuser = bool(form.cleaned_data.get("is_superuser"))
        services.mqtt_user_update(principal=self.principal, deployment=self.deployment, user=user,
                                  is_superuser=superuser)
        messages.success(request, f"{user.username} is {'now' if superuser else 'no longer'} a superuser.")
        return redirect("console:deployment-mqtt-users", self.deployment.id)


class MqttUserDeleteView(MqttUserView):
    """A confirmation page, then the delete (which also works without JavaScript)."""

    template_name = "console/deployments/access/user_delete.html"

    def get(self, request: HttpRequest, deployment_id: str, user_id: str) -> HttpResponse:
        return self.render_page(self.access_context(mqtt_user=self.mqtt_user()))

    def post(self, request: HttpRequest, deployment_id: str, user_id: str) -> HttpResponse:
        user = self.mqtt_user()
        services.mqtt_user_delete(principal=self.principal, deployment=self.deployment, user=user)
        messages.success(request, f"User {user.username} deleted; clients using it can no longer connect.")
        return redirect("console:deployment-mqtt-users", self.deployment.id)


# --- import -----------------------------------------------------------------------------------------
@dataclass
class PreviewLine:
    """One line of an import file as the preview shows it (never with its password)."""

    line: int
    username: str
    kind: str
    error: str = ""


class MqttUsersImportView(AccessMixin, OrganizationConsoleView):
    """Paste or upload CSV; "Preview" is a dry run showing what would happen line by line; "Import" applies
    it (all lines or, when any is wrong, none)."""

    template_name = "console/deployments/access/import.html"
    required_perm = Perm.DEPLOYMENTS_WRITE

    def get(self, request: HttpRequest, deployment_id: str) -> HttpResponse:
        return self.render_page(self.access_context(form=access_forms.MqttUsersImportForm()))

    def post(self, request: HttpRequest, deployment_id: str) -> HttpResponse:
        form = access_forms.MqttUsersImportForm(request.POST, request.FILES)
        if not form.is_valid():
            return self.render_page(self.access_context(form=form), status=400)
        text = form.cleaned_data["csv_text"]
        lines = list(imports.csv_lines(io.StringIO(text)))  # the form already holds the text (20 MiB at most)
        if not lines:
            form.add_error("csv_text", "No user lines: only column names or blank lines.")
            return self.render_page(self.access_context(form=form), status=400)
        apply = "apply" in request.POST
        try:
            result = self._import(lines, dry_run=not apply)
        except errors.ValidationFailed:
            # A wrong line (malformed, or the data changed since the preview): show the preview instead.
            result = self._import(lines, dry_run=True)
        except _PAGE_ERRORS:
            raise
        except errors.DomainError as exc:
            form_add_domain_error(form, exc)
            return self.render_page(self.access_context(form=form), status=400)
        if apply and not result.errors_total:
            messages.success(request, f"Imported: {result.created} created, {result.updated} updated, "
                                      f"{result.unchanged} unchanged.")
            return redirect("console:deployment-mqtt-users", self.deployment.id)
        by_index = {problem["index"]: problem["message"] for problem in result.errors}
        preview = [PreviewLine(line.line, line.username, line.kind, by_index.get(index, ""))
                   for index, line in enumerate(lines)]
        problems = [line for line in preview if line.error]
        shown = problems if problems else preview
        preview_form = access_forms.MqttUsersImportForm(initial={"csv_text": text})
        return self.render_page(self.access_context(
            form=preview_form, result=result, lines=shown[:PREVIEW_LINES_MAX], problems=result.errors_total,
            total=len(lines), more=max(0, (result.errors_total or len(lines)) - PREVIEW_LINES_MAX)),
            status=400 if problems else 200)

    def _import(self, lines: list[imports.CsvLine], *, dry_run: bool) -> imports.ImportResult:
        return imports.mqtt_users_import(principal=self.principal, deployment=self.deployment, users=lines,
                                         dry_run=dry_run)
