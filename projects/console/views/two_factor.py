"""Console pages of two-factor login: a person's own setup (QR code, confirm, recovery codes, turn off) and the
second step of a login.

Between the right password and the right code the browser holds only a pending marker in its session
(``PENDING_KEY``: who, with which password hash, since when, where to go next), never a login: every page
but the code page still sees an anonymous visitor. The marker lasts ``PENDING_SECONDS`` and is void once the
password changes.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import qrcode
import qrcode.image.svg
from django import forms
from django.contrib import messages
from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.safestring import SafeString, mark_safe

from controlplane import errors
from projects import selectors
from projects.console import forms as console_forms
from projects.console.base import (
    ConsoleFormMixin,
    ConsoleView,
    OrganizationConsoleView,
    OrganizationFormView,
    request_ip_and_agent,
)
from projects.models import TwoFactorDevice, User
from projects.services.logins import LoginLocked, login_authenticate
from projects.services.two_factor import (
    provisioning_uri,
    two_factor_disable,
    two_factor_enrol_begin,
    two_factor_enrol_confirm,
    two_factor_login,
    two_factor_recovery_codes_renew,
)
from projects.session_tracking import current_console_session_id

PENDING_KEY = "_two_factor_pending"
#: How long the code page waits after the password, in seconds.
PENDING_SECONDS = 300


SETUP_ERROR_KEY = "two_factor_setup_error"
RENEW_ERROR_KEY = "two_factor_renew_error"


def _no_store(response: HttpResponse) -> HttpResponse:
    # The secret and the recovery codes must not stay in a shared browser's cache or a proxy's.
    response["Cache-Control"] = "no-store"
    return response


def qr_code_svg(text: str, *, label: str) -> SafeString:
    """``text`` as an inline SVG QR code (no image file, nothing leaves the page), labelled for screen readers."""
    svg = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    markup = svg.to_string(encoding="unicode")
    # The label is ours (fixed text and an email address), escaped by hand for the attribute.
    escaped = label.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return mark_safe(markup.replace("<svg ", f'<svg role="img" aria-label="{escaped}" class="qr-code" ', 1))  # noqa: S308


def setup_display(device: TwoFactorDevice) -> dict[str, Any]:
    """What a setup page shows of an unconfirmed authenticator: its QR code and its secret in groups of four."""
    return {"qr_svg": qr_code_svg(provisioning_uri(device), label=f"QR code for mqcloud, {device.user.email}"),
            "secret_groups": " ".join(device.secret[i:i + 4] for i in range(0, len(device.secret), 4))}


def pending_login_store(request: HttpRequest, key: str, user: User, *, next_url: str) -> None:
    """Remembers, under ``key`` of the session, that ``user`` gave the right password just now and has a step
    left (a code, a setup): who, with which password hash, since when, where to go next. Not a login."""
    request.session.cycle_key()  # a session id seen before the password is not the one that goes on
    request.session[key] = {"user": user.pk, "backend": getattr(user, "backend", ""),
                            "hash": user.get_session_auth_hash(), "at": time.time(), "next": next_url}


def pending_login_read(request: HttpRequest, key: str, *, max_age_s: float) -> tuple[User, dict[str, Any]] | None:
    """The person half-way through a login under ``key``, and its state; None once it is older than
    ``max_age_s``, the account is gone or inactive, or its password changed meanwhile."""
    state = request.session.get(key)
    if not state or time.time() - state["at"] > max_age_s:
        return None
    user = selectors.user_get_active(user_id=state["user"])
    if user is None or user.get_session_auth_hash() != state["hash"]:
        return None
    return user, state


def two_factor_login_begin(request: HttpRequest, user: User, *, next_url: str) -> HttpResponse:
    """The password was right and the account has two-factor: remember who is half-way, ask for the code."""
    pending_login_store(request, PENDING_KEY, user, next_url=next_url)
    return redirect("console:login-two-factor")


def _pending(request: HttpRequest) -> tuple[User, dict[str, Any]] | None:
    return pending_login_read(request, PENDING_KEY, max_age_s=PENDING_SECONDS)


# --- login, second step ---------------------------------------------------------------------------------
class TwoFactorLoginView(ConsoleFormMixin, ConsoleView):
    template_name = "console/login_two_factor.html"
    form_class = console_forms.TwoFactorCodeForm

    def get_form_kwargs(self) -> dict[str, Any]:
        return {"help_text": "The 6-digit code your authenticator app shows for mqcloud, or one of your recovery "
                             "codes."}

    def _start_again(self) -> HttpResponse:
        self.request.session.pop(PENDING_KEY, None)
        messages.info(self.request, "Log in again: the code page waits only a few minutes after the password.")
        return redirect("console:login")

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if _pending(request) is None:
            return self._start_again()
        return super().get(request, *args, **kwargs)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if _pending(request) is None:
            return self._start_again()
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: forms.Form) -> HttpResponse:
        pending = _pending(self.request)
        assert pending is not None  # checked by post()
        user, state = pending
        used = two_factor_login(user=user, code=form.cleaned_data["code"], **request_ip_and_agent(self.request))
        self.request.session.pop(PENDING_KEY, None)
        login(self.request, user, backend=state["backend"] or None)
        if used == "recovery_code":
            left = selectors.recovery_codes_left(user=user)
            messages.warning(self.request, f"You logged in with a recovery code; {left} left. If your phone is "
                                           f"lost, turn two-factor off and set it up again on a new one.")
        return redirect(state["next"])


# --- a person's own setup -----------------------------------------------------------------------------
class TwoFactorView(OrganizationFormView):
    """Account → Two-factor login: off (a button to start), being set up (QR code, secret, first code), or on
    (recovery codes left, turn off with a code)."""

    template_name = "console/two_factor.html"
    form_class = console_forms.TwoFactorCodeForm
    open_without_two_factor = True

    def _device(self) -> TwoFactorDevice | None:
        return selectors.two_factor_device_for(user=self.request.user)

    def get_form_kwargs(self) -> dict[str, Any]:
        device = self._device()
        if device is not None and device.confirmed_at is not None:
            return {"help_text": "A current code from your app, or a recovery code."}
        return {"help_text": "The 6-digit code the app shows after adding the account."}

    def get_context(self, form: forms.Form) -> dict[str, Any]:
        device = self._device()
        context: dict[str, Any] = {"form": form, "device": device,
                                   "enabled": device is not None and device.confirmed_at is not None,
                                   "setup_error": self.request.session.pop(SETUP_ERROR_KEY, None),
                                   "renew_error": self.request.session.pop(RENEW_ERROR_KEY, None)}
        if context["enabled"]:
            context["recovery_codes_left"] = selectors.recovery_codes_left(user=self.request.user)
        elif device is not None:
            context.update(setup_display(device))
        return context

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return _no_store(super().get(request, *args, **kwargs))

    def form_valid(self, form: forms.Form) -> HttpResponse:
        code = form.cleaned_data["code"]
        device = self._device()
        if device is not None and device.confirmed_at is not None:
            two_factor_disable(user=self.request.user, code=code, **request_ip_and_agent(self.request))
            messages.success(self.request, "Two-factor login is off. Your recovery codes no longer work.")
            return redirect("console:two-factor")
        codes = two_factor_enrol_confirm(user=self.request.user, code=code, **request_ip_and_agent(self.request),
                                         keep_session_id=current_console_session_id(self.request))
        return _no_store(self.render_page({"codes": codes}, template_name="console/two_factor_recovery_codes.html"))


class TwoFactorSetupView(OrganizationConsoleView):
    """Starts a setup: a new secret, shown on the two-factor page until the first code confirms it."""

    http_method_names: ClassVar[list[str]] = ["post"]
    open_without_two_factor = True

    def post(self, request: HttpRequest) -> HttpResponse:
        # The password again: a session left open (or stolen) must not tie the account to someone else's app,
        # which its owner could then not turn off without a code.
        try:
            # As a password change does: the address's allowance (an office behind one NAT) does not count here.
            login_authenticate(email=request.user.email, password=request.POST.get("password", ""), ip=None)
        except (errors.NotAuthenticated, LoginLocked) as exc:
            # Shown next to the field by the page the redirect lands on.
            request.session[SETUP_ERROR_KEY] = (str(exc) if isinstance(exc, LoginLocked)
                                                else "The password is not correct.")
            return redirect("console:two-factor")
        two_factor_enrol_begin(user=request.user)
        return redirect("console:two-factor")


class TwoFactorRecoveryCodesView(OrganizationConsoleView):
    """Ten new recovery codes for the old ones, with a current code from the app; shown once."""

    http_method_names: ClassVar[list[str]] = ["post"]
    open_without_two_factor = True

    def post(self, request: HttpRequest) -> HttpResponse:
        try:
            codes = two_factor_recovery_codes_renew(user=request.user, code=request.POST.get("code", "").strip(),
                                                    **request_ip_and_agent(request))
        except (errors.DomainError, LoginLocked) as exc:
            # Shown next to the field by the page the redirect lands on.
            request.session[RENEW_ERROR_KEY] = exc.detail
            return redirect("console:two-factor")
        return _no_store(self.render_page({"codes": codes, "renewed": True},
                                          template_name="console/two_factor_recovery_codes.html"))
