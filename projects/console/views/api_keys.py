"""Console pages of API keys: the list, a new key (its secret shown on one page, once), revoke."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.cache import add_never_cache_headers

from projects import selectors
from projects.console import forms as console_forms
from projects.console.base import (
    OrganizationConsoleView,
    OrganizationFormView,
    RowActionView,
)
from projects.models import ApiKey
from projects.roles import Perm
from projects.services.api_keys import api_key_create, api_key_revoke
from projects.services.grants import may_grant
from projects.tenancy import Principal

# A new API key's secret between the POST that makes it and the one page that shows it.
SESSION_NEW_KEY_SECRET = "new_api_key_secret"


def _describe_api_keys(principal: Principal, api_keys: list[ApiKey]) -> list[ApiKey]:
    """Adds whether the principal may revoke each key (the service's check), so the row offers only that."""
    for api_key in api_keys:
        api_key.revocable = may_grant(principal=principal, role=api_key.role, limit=api_key.project_limit())
    return api_keys


class ApiKeyListView(OrganizationConsoleView):
    template_name = "console/api_keys.html"
    required_perm = Perm.API_KEYS_MANAGE

    def get(self, request: HttpRequest) -> HttpResponse:
        api_keys = list(selectors.api_key_list(principal=self.principal).order_by("-created_at"))
        return self.render_page({"api_keys": _describe_api_keys(self.principal, api_keys)})


class ApiKeyCreateView(OrganizationFormView):
    template_name = "console/api_key_form.html"
    form_class = console_forms.ApiKeyForm
    required_perm = Perm.API_KEYS_MANAGE

    def get_form_kwargs(self) -> dict[str, Any]:
        return {"principal": self.principal}

    def form_valid(self, form: forms.Form) -> HttpResponse:
        api_key, secret = api_key_create(
            principal=self.principal, name=form.cleaned_data["name"], role=form.cleaned_data["role"],
            projects=list(form.cleaned_data["projects"]), expires_at=form.cleaned_data["expires_at"],
            service=form.cleaned_data.get("service", False),
        )
        # Post/redirect/get: reloading the page must not mint a second key. The secret waits in this
        # session for the one GET that shows it, and is gone after.
        self.request.session[SESSION_NEW_KEY_SECRET] = {"id": api_key.pk, "secret": secret}
        return redirect("console:api-key-created", object_id=api_key.pk)


class ApiKeyCreatedView(OrganizationConsoleView):
    template_name = "console/api_key_created.html"
    required_perm = Perm.API_KEYS_MANAGE

    def get(self, request: HttpRequest, object_id: str) -> HttpResponse:
        api_key = selectors.api_key_get(principal=self.principal, api_key_id=object_id)
        waiting = request.session.get(SESSION_NEW_KEY_SECRET) or {}
        secret = None
        if waiting.get("id") == api_key.pk:
            secret = request.session.pop(SESSION_NEW_KEY_SECRET)["secret"]
        response = self.render_page({"api_key": api_key, "secret": secret})
        add_never_cache_headers(response)
        return response


class ApiKeyRevokeView(RowActionView):
    row_template = "console/_api_key_row.html"
    list_url_name = "console:api-keys"
    required_perm = Perm.API_KEYS_MANAGE

    def get_object(self, object_id: str) -> Model:
        return selectors.api_key_get(principal=self.principal, api_key_id=object_id)

    def perform(self, obj: Model) -> tuple[Model | None, str]:
        api_key: ApiKey = api_key_revoke(principal=self.principal, api_key=obj)
        return api_key, f"API key {api_key.name} is revoked; it stops working at once."

    def describe_row(self, row: Model) -> Model:
        return _describe_api_keys(self.principal, [row])[0]
