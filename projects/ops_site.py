"""The ops site (/ops/): Django's admin site, open only to operators with two-factor login, and the page where an
operator without it sets it up.

Every operator must have it: a staff session of an account without it (a console login, which asks no code of
such an account) does not open the site, and the ops login takes an operator who has none from the right
password to setting it up instead of in: the QR code and secret, then the first right code, which turns
two-factor on, logs the operator in and shows the recovery codes once. Nothing opens before that code.
Installed by ``ops.apps.OpsAdminConfig``; the login form is ``projects.admin.OpsLoginForm``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views import View

from controlplane import errors
from projects import selectors
from projects.console.base import request_ip_and_agent
from projects.console.forms import TwoFactorCodeForm
from projects.console.views.two_factor import pending_login_read, pending_login_store, setup_display
from projects.services.logins import LoginLocked
from projects.services.two_factor import two_factor_enrol_begin, two_factor_enrol_confirm

#: The session key of an operator between the right password and a confirmed authenticator.
SETUP_PENDING_KEY = "_ops_two_factor_setup"


class OpsAdminSite(admin.AdminSite):
    def has_permission(self, request: HttpRequest) -> bool:
        return super().has_permission(request) and selectors.two_factor_enabled(request.user)

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        response = super().login(request, extra_context)
        # The login form (projects.admin.OpsLoginForm) refuses an operator without two-factor and names them
        # (``setup_user``): their password was right, so they go on to the setup, logged in to nothing yet.
        context = getattr(response, "context_data", None) or {}
        user = getattr(context.get("form"), "setup_user", None)
        if user is None:
            return response
        pending_login_store(request, SETUP_PENDING_KEY, user,
                            next_url=context.get("next") or reverse("admin:index", current_app=self.name))
        return redirect("ops-two-factor-setup")


#: How long the setup page waits after the password, in seconds: long enough to install an app.
SETUP_SECONDS = 900


class OpsTwoFactorSetupView(View):
    http_method_names = ["get", "post"]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        pending = pending_login_read(request, SETUP_PENDING_KEY, max_age_s=SETUP_SECONDS)
        if pending is None:
            request.session.pop(SETUP_PENDING_KEY, None)
            return redirect("admin:login")
        self.user, self.state = pending
        response = super().dispatch(request, *args, **kwargs)
        # The secret and the recovery codes must not stay in a shared browser's cache or a proxy's.
        response["Cache-Control"] = "no-store"
        return response

    def get(self, request: HttpRequest) -> HttpResponse:
        device = selectors.two_factor_device_for(user=self.user)
        if device is not None and device.confirmed_at is not None:
            # Set up meanwhile (in another tab): the login asks for the code now.
            request.session.pop(SETUP_PENDING_KEY, None)
            return redirect("admin:login")
        if device is None or not self.state.get("begun"):
            # A fresh secret once per password: an unconfirmed one from before may have been seen by anyone.
            device = two_factor_enrol_begin(user=self.user)
            self.state["begun"] = True
            request.session.modified = True
        return self._page(TwoFactorCodeForm(help_text=_CODE_HELP), device_display=setup_display(device))

    def post(self, request: HttpRequest) -> HttpResponse:
        form = TwoFactorCodeForm(request.POST, help_text=_CODE_HELP)
        device = selectors.two_factor_device_for(user=self.user)
        if device is None or not self.state.get("begun"):
            return redirect("ops-two-factor-setup")
        if form.is_valid():
            try:
                codes = two_factor_enrol_confirm(user=self.user, code=form.cleaned_data["code"],
                                                 **request_ip_and_agent(request))
            except (errors.DomainError, LoginLocked) as exc:
                form.add_error("code", exc.detail)
            else:
                request.session.pop(SETUP_PENDING_KEY, None)
                login(request, self.user, backend=self.state["backend"] or None)
                return self._render("ops/two_factor_codes.html", {"codes": codes, "next": self.state["next"]},
                                    title="Save your recovery codes")
        return self._page(form, device_display=setup_display(device))

    def _page(self, form: TwoFactorCodeForm, *, device_display: dict[str, Any]) -> HttpResponse:
        return self._render("ops/two_factor_setup.html", {"form": form, "operator": self.user, **device_display},
                            title="Set up two-factor login")

    def _render(self, template: str, context: dict[str, Any], *, title: str) -> HttpResponse:
        # The site's frame without its navigation: the operator is not logged in yet.
        return TemplateResponse(self.request, template, {**admin.site.each_context(self.request),
                                                         "title": title, "has_permission": False, **context})


_CODE_HELP = "The 6-digit code your authenticator app shows for mqcloud after adding it."
