"""Console pages of a person's session and account: log in and out, sign up, reset or change the password,
switch organization. All but the last two are public pages (``ConsoleView``)."""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout, update_session_auth_hash
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode

from controlplane import errors, ratelimit
from projects import accounts
from projects.console import forms as console_forms
from projects.console.base import (
    SESSION_ORGANIZATION_KEY,
    ConsoleFormMixin,
    ConsoleView,
    OrganizationConsoleView,
    OrganizationFormView,
    request_ip_and_agent,
)
from projects.console.views.two_factor import two_factor_login_begin
from projects.selectors import two_factor_enabled
from projects.services.logins import LoginLocked, SsoRequired, login_authenticate
from projects.services.organizations import signup
from projects.session_tracking import current_console_session_id
from projects.tenancy import client_ip, principal_for_user


def safe_next_url(request: HttpRequest) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(candidate, allowed_hosts={request.get_host()},
                                       require_https=request.is_secure()):
        return candidate
    return reverse("console:home")


# --- session ----------------------------------------------------------------------------------------
class LoginView(ConsoleFormMixin, ConsoleView):
    template_name = "console/login.html"
    form_class = console_forms.LoginForm

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated:
            return redirect(safe_next_url(request))
        return super().get(request, *args, **kwargs)

    def get_context(self, form: forms.Form) -> dict[str, Any]:
        return {"form": form, "next": safe_next_url(self.request)}

    def form_valid(self, form: forms.Form) -> HttpResponse:
        try:
            user = login_authenticate(email=form.cleaned_data["email"], password=form.cleaned_data["password"],
                                      method="password", request=self.request, **request_ip_and_agent(self.request))
        except LoginLocked as exc:
            minutes = max(1, settings.LOGIN_LOCKOUT_SECONDS // 60)
            raise LoginLocked(f"{exc.detail} Logins are paused for up to {minutes} minutes.",
                                       retry_after=exc.retry_after) from exc
        except SsoRequired as exc:
            # Not an error page: the person is sent on to the SSO page, their address filled in.
            messages.warning(self.request, exc.detail)
            query = urlencode({"email": form.cleaned_data["email"], "next": safe_next_url(self.request)})
            return redirect(f"{reverse('console:login-sso')}?{query}")
        if two_factor_enabled(user):
            # Not a login yet: the session only notes who gave the right password, for the code page.
            return two_factor_login_begin(self.request, user, next_url=safe_next_url(self.request))
        login(self.request, user)
        return redirect(safe_next_url(self.request))


class LogoutView(ConsoleView):
    http_method_names: ClassVar[list[str]] = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        logout(request)  # the session's record goes with it (projects.session_tracking)
        messages.info(request, "You are logged out.")
        return redirect("console:login")


class SignupView(ConsoleFormMixin, ConsoleView):
    template_name = "console/signup.html"
    form_class = console_forms.SignupForm

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # Every answer counts, a refusal too, on the API's per-IP signup budget: no probing addresses here.
        hit = ratelimit.hit_rate("signup", client_ip(request) or "unknown")
        if hit is not None and not hit.allowed:
            raise errors.RateLimited("Too many signups from your address; try again later.",
                                     retry_after=hit.retry_after)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: forms.Form) -> HttpResponse:
        # No API key: its secret would be shown to nobody; the API keys page makes one when it is wanted.
        organization, user, _api_key, _secret = signup(**form.cleaned_data, with_api_key=False,
                                                                **request_ip_and_agent(self.request))
        login(self.request, user)
        self.request.session[SESSION_ORGANIZATION_KEY] = organization.pk
        messages.success(self.request, f"Welcome to mqcloud! {organization.name} is ready, with a default project.")
        return redirect("console:home")


# --- passwords --------------------------------------------------------------------------------------
class PasswordResetView(ConsoleFormMixin, ConsoleView):
    """"Forgot password?": mails a one-time link; the page says the same whether or not the address is known."""

    template_name = "console/password_reset.html"
    form_class = console_forms.PasswordResetForm

    def form_valid(self, form: forms.Form) -> HttpResponse:
        accounts.password_reset_request(email=form.cleaned_data["email"], ip=client_ip(self.request))
        return self.render_page({"sent_to": form.cleaned_data["email"]})


class PasswordResetConfirmView(ConsoleFormMixin, ConsoleView):
    """The page the reset mail links to (``PUBLIC_BASE_URL``/console/password/reset/<token>)."""

    template_name = "console/password_reset_confirm.html"
    form_class = console_forms.PasswordResetConfirmForm

    def get_context(self, form: forms.Form) -> dict[str, Any]:
        return {"form": form, "valid": accounts.password_reset_user(token=self.kwargs["token"]) is not None}

    def form_valid(self, form: forms.Form) -> HttpResponse:
        accounts.password_reset_confirm(token=self.kwargs["token"], new_password=form.cleaned_data["new_password"],
                                        **request_ip_and_agent(self.request))
        messages.success(self.request, "Your password is changed; log in with it. Other sessions are logged out.")
        return redirect("console:login")


class PasswordChangeView(OrganizationFormView):
    """Account: change your own password; this session stays, every other one ends."""

    template_name = "console/password_change.html"
    form_class = console_forms.PasswordChangeForm

    def form_valid(self, form: forms.Form) -> HttpResponse:
        user = accounts.password_change(user=self.request.user, **form.cleaned_data,
                                        keep_session_id=current_console_session_id(self.request),
                                        **request_ip_and_agent(self.request))
        update_session_auth_hash(self.request, user)
        messages.success(self.request, "Your password is changed. Your other sessions are logged out.")
        return redirect("console:password-change")


class OrganizationSwitchView(OrganizationConsoleView):
    http_method_names: ClassVar[list[str]] = ["post"]
    # Another organization may not require two-factor: a person sent to set it up may go there instead.
    open_without_two_factor = True

    def post(self, request: HttpRequest) -> HttpResponse:
        chosen = principal_for_user(request.user, request.POST.get("organization_id") or None,
                                    **request_ip_and_agent(request))
        request.session[SESSION_ORGANIZATION_KEY] = chosen.organization.pk
        messages.info(request, f"Switched to {chosen.organization.name}.")
        # Not back to the page we came from: its object belongs to the previous organization.
        return redirect("console:home")
