"""Console pages of security: a person's own console sessions (list, end one, end all others) and the
organization's security policy (IP allowlist, session timeouts, required two-factor login)."""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.contrib import messages
from django.contrib.auth import logout
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from projects import selectors
from projects.console import forms as console_forms
from projects.console.base import OrganizationConsoleView, OrganizationFormView, RowActionView
from projects.models import ConsoleSession
from projects.roles import Perm
from projects.services.security import max_timeout_minutes, organization_security_update
from projects.services.sessions import console_session_end, console_sessions_end_others
from projects.session_tracking import current_console_session_id


def _describe_sessions(request: HttpRequest, sessions: list[ConsoleSession]) -> list[ConsoleSession]:
    current = current_console_session_id(request)
    for session in sessions:
        session.is_current = session.pk == current
    return sessions


class SessionListView(OrganizationConsoleView):
    template_name = "console/sessions.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        sessions = _describe_sessions(request, list(selectors.console_session_list(principal=self.principal)))
        idle, absolute = selectors.session_timeouts_for(user_id=request.user.pk)
        return self.render_page({"sessions": sessions, "others": sum(not s.is_current for s in sessions),
                                 "idle_minutes": idle // 60 if idle else None,
                                 "absolute_minutes": absolute // 60 if absolute else None})


class SessionEndView(RowActionView):
    row_template = "console/_session_row.html"
    list_url_name = "console:sessions"

    def get_object(self, object_id: str) -> Model:
        return selectors.console_session_get(principal=self.principal, session_id=object_id)

    def perform(self, obj: Model) -> tuple[Model | None, str]:
        assert isinstance(obj, ConsoleSession)
        console_session_end(principal=self.principal, session=obj)
        if obj.pk == current_console_session_id(self.request):
            # The page offers no button for it, but a form posted by hand ends this very session: log out.
            logout(self.request)
            self.redirect_to = reverse("console:login")
            return None, "You are logged out."
        return None, f"The session on {obj.device} is ended; that browser is logged out."


class SessionsEndOthersView(OrganizationConsoleView):
    http_method_names: ClassVar[list[str]] = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        ended = console_sessions_end_others(principal=self.principal,
                                            keep_session_id=current_console_session_id(request))
        messages.success(request, f"{ended} other session{'' if ended == 1 else 's'} ended." if ended
                         else "You had no other sessions.")
        return redirect("console:sessions")


class SecuritySettingsView(OrganizationFormView):
    template_name = "console/security.html"
    form_class = console_forms.SecurityPolicyForm
    required_perm = Perm.ORGANIZATION_MANAGE

    def get_form_kwargs(self) -> dict[str, Any]:
        organization = self.principal.organization
        return {"initial": {
            "ip_allowlist": "\n".join(organization.ip_allowlist),
            "session_idle_timeout_minutes": organization.session_idle_timeout_minutes,
            "session_absolute_timeout_minutes": organization.session_absolute_timeout_minutes,
            "end_sessions_on_removal": organization.end_sessions_on_removal,
            "require_two_factor": organization.require_two_factor,
        }}

    def get_context(self, form: forms.Form) -> dict[str, Any]:
        return {"form": form, "your_ip": self.principal.ip, "max_minutes": max_timeout_minutes()}

    def form_valid(self, form: forms.Form) -> HttpResponse:
        organization_security_update(principal=self.principal, **form.cleaned_data)
        messages.success(self.request, "Security settings saved.")
        return redirect("console:security")
