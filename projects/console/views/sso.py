"""Console login through an organization's OpenID Provider (issue 17): the address first, then the IdP, then
the callback. Both pages are public (``ConsoleView``); the callback ends in the same Django login as a password."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from projects.console import forms as console_forms
from projects.console.base import SESSION_ORGANIZATION_KEY, ConsoleFormMixin, ConsoleView, request_ip_and_agent
from projects.console.views.auth import safe_next_url
from projects.selectors import email_domain, sso_connection_for_email
from projects.services.sso import SsoPending, SsoRefused, sso_begin, sso_complete

#: The session key of a login waiting for the IdP's answer; taken out by the callback, so a state works once.
PENDING_KEY = "sso_pending"
#: The model backend: the IdP vouched for the person, Django only needs to know which backend keeps users.
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


def callback_url(request: HttpRequest) -> str:
    return request.build_absolute_uri(reverse("console:sso-callback"))


class SsoLoginView(ConsoleFormMixin, ConsoleView):
    template_name = "console/login_sso.html"
    form_class = console_forms.SsoLoginForm

    def get_form(self, data: Any = None) -> forms.Form:
        # The password page sends a person whose domain requires SSO here with their address.
        return self.form_class(data, initial={"email": self.request.GET.get("email", "")[:254]})

    def get_context(self, form: forms.Form) -> dict[str, Any]:
        return {"form": form, "next": safe_next_url(self.request)}

    def form_valid(self, form: forms.Form) -> HttpResponse:
        email = form.cleaned_data["email"]
        connection = sso_connection_for_email(email=email)
        if connection is None:
            form.add_error("email", f"No single sign-on is set up for {email_domain(email)}; log in with your "
                                    f"password.")
            return self.render_page(self.get_context(form), status=400)
        url, pending = sso_begin(connection=connection, redirect_uri=callback_url(self.request), login_hint=email,
                                 next_url=safe_next_url(self.request))
        self.request.session[PENDING_KEY] = pending.as_session()
        return redirect(url)


class SsoCallbackView(ConsoleView):
    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        pending = SsoPending.from_session(request.session.pop(PENDING_KEY, None))
        try:
            user = sso_complete(pending=pending, params=request.GET.dict(), redirect_uri=callback_url(request),
                                **request_ip_and_agent(request))
        except SsoRefused as exc:
            messages.error(request, f"Single sign-on refused: {exc.detail}")
            return redirect("console:login")
        assert pending is not None  # sso_complete refuses a missing one
        login(request, user, backend=MODEL_BACKEND)
        organization_id = user.memberships.filter(organization__sso_connection__pk=pending.connection_id).values_list(
            "organization_id", flat=True).first()
        if organization_id:
            request.session[SESSION_ORGANIZATION_KEY] = organization_id
        return redirect(pending.next_url or "console:home")
