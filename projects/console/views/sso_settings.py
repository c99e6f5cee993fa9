"""The console's SSO settings page (issue 17): the organization's IdP, its verified domains, unlinking; and the
public page the domain verification mail links to."""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from controlplane import errors
from projects import selectors
from projects.console import forms as console_forms
from projects.console.base import ConsoleView, OrganizationConsoleView, OrganizationFormView, request_ip_and_agent
from projects.models import SsoDomain
from projects.roles import Perm
from projects.services.sso_settings import (
    sso_configure,
    sso_domain_add,
    sso_domain_check_dns,
    sso_domain_confirm,
    sso_domain_remove,
    sso_unlink,
    token_hash,
    txt_record_value,
)
from projects.session_tracking import current_console_session_id


def _mappings_text(mappings: list[dict[str, Any]]) -> str:
    return "\n".join(f"{m['group']} = {m['role']}" + (f": {', '.join(m['projects'])}" if m.get("projects") else "")
                     for m in mappings)


class SsoSettingsView(OrganizationFormView):
    template_name = "console/sso.html"
    form_class = console_forms.SsoSettingsForm
    required_perm = Perm.ORGANIZATION_MANAGE

    def get_form_kwargs(self) -> dict[str, Any]:
        connection = selectors.sso_connection_get(principal=self.principal)
        if connection is None:
            return {}
        return {"initial": {"issuer": connection.issuer, "client_id": connection.client_id,
                            "groups_claim": connection.groups_claim, "default_role": connection.default_role,
                            "group_mappings": _mappings_text(connection.group_mappings),
                            "require_sso": connection.require_sso}}

    def get_context(self, form: forms.Form) -> dict[str, Any]:
        domains = list(selectors.sso_domain_list(principal=self.principal))
        for sso_domain in domains:
            sso_domain.txt_record = txt_record_value(sso_domain)  # type: ignore[attr-defined]
        return {"form": form, "domain_form": console_forms.SsoDomainForm(), "domains": domains,
                "connection": selectors.sso_connection_get(principal=self.principal),
                "redirect_uri": self.request.build_absolute_uri(reverse("console:sso-callback"))}

    def form_valid(self, form: forms.Form) -> HttpResponse:
        sso_configure(principal=self.principal, **form.cleaned_data)
        messages.success(self.request, "Single sign-on saved.")
        return redirect("console:sso-settings")


class SsoUnlinkView(OrganizationConsoleView):
    http_method_names: ClassVar[list[str]] = ["post"]
    required_perm = Perm.ORGANIZATION_MANAGE

    def post(self, request: HttpRequest) -> HttpResponse:
        ended = sso_unlink(principal=self.principal, keep_session_id=current_console_session_id(request))
        messages.success(request, f"Single sign-on removed; {ended} console session{'' if ended == 1 else 's'} of "
                                  f"its people ended.")
        return redirect("console:sso-settings")


class SsoDomainAddView(OrganizationConsoleView):
    http_method_names: ClassVar[list[str]] = ["post"]
    required_perm = Perm.ORGANIZATION_MANAGE

    def post(self, request: HttpRequest) -> HttpResponse:
        form = console_forms.SsoDomainForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Enter a domain such as example.com.")
            return redirect("console:sso-settings")
        try:
            sso_domain = sso_domain_add(principal=self.principal, **form.cleaned_data)
        except (errors.ValidationFailed, errors.Conflict) as exc:
            messages.error(request, exc.detail)
            return redirect("console:sso-settings")
        messages.success(request, f"A verification mail is on its way to {sso_domain.verification_email}; or "
                                  f"publish the TXT record shown below.")
        return redirect("console:sso-settings")


class SsoDomainActionView(OrganizationConsoleView):
    """Check a domain's TXT record now, or remove the domain."""

    http_method_names: ClassVar[list[str]] = ["post"]
    required_perm = Perm.ORGANIZATION_MANAGE
    operation: ClassVar[str] = ""

    def post(self, request: HttpRequest, object_id: str) -> HttpResponse:
        sso_domain = selectors.sso_domain_get(principal=self.principal, domain_id=object_id)
        if self.operation == "remove":
            sso_domain_remove(principal=self.principal, sso_domain=sso_domain)
            messages.success(request, f"{sso_domain.domain} removed.")
            return redirect("console:sso-settings")
        try:
            sso_domain_check_dns(principal=self.principal, sso_domain=sso_domain)
        except errors.ValidationFailed as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, f"{sso_domain.domain} is verified.")
        return redirect("console:sso-settings")


class SsoDomainVerifyView(ConsoleView):
    """The verification mail's link: shows what is asked, confirms on POST (a mail scanner's GET changes
    nothing)."""

    template_name = "console/sso_domain_verify.html"

    def get(self, request: HttpRequest, token: str) -> HttpResponse:
        sso_domain = SsoDomain.objects.select_related("organization").filter(token_hash=token_hash(token)).first()
        return self.render_page({"sso_domain": sso_domain, "token": token}, status=200 if sso_domain else 404)

    def post(self, request: HttpRequest, token: str) -> HttpResponse:
        sso_domain = sso_domain_confirm(token=token, **request_ip_and_agent(request))
        return self.render_page({"sso_domain": sso_domain, "token": token, "confirmed": True})
