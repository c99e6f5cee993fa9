"""The one base every console page derives from: the console's tenancy choke point.

``OrganizationConsoleView`` requires a login, resolves the :class:`Principal` for the organization chosen in
the session once, refuses addresses outside the organization's IP allowlist, checks the view's permission, and
turns the domain errors services raise into what a person expects: a 404 or 403 page, a form error, or a flash
message. Subclasses cannot override ``dispatch`` (or, below ``OrganizationConsoleView``, ``prepare``), so no
page can skip those steps. Pages read through selectors and write through services; they never touch models themselves.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urlsplit

from django import forms
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View

from controlplane import errors, request_context
from projects.roles import Perm
from projects.services.security import AddressNotAllowed, network_access_check, two_factor_policy_met
from projects.tenancy import Principal, client_ip, principal_allowed_from_address, principal_for_user

SESSION_ORGANIZATION_KEY = "organization_id"

# These two end the request with an error page; every other domain error is the user's to fix.
_PAGE_ERRORS = (errors.NotFound, errors.PermissionDenied)


def request_ip_and_agent(request: HttpRequest) -> dict[str, Any]:
    return {"ip": client_ip(request), "user_agent": request.headers.get("User-Agent", "")[:256]}


def form_add_domain_error(form: forms.Form, exc: errors.DomainError) -> None:
    """Show a service's refusal on the form: field messages next to their fields, the rest on top."""
    placed = False
    for field, field_messages in exc.errors.items():
        form.add_error(field if field in form.fields else None, list(field_messages))
        placed = True
    if not placed:
        form.add_error(None, exc.detail)


def _htmx_page(request: HttpRequest) -> str:
    """The path of the page an htmx request was made from (its own path when that is not known)."""
    current = urlsplit(request.headers.get("HX-Current-URL", ""))
    if current.path and (not current.netloc or current.netloc == request.get_host()):
        return current.path + (f"?{current.query}" if current.query else "")
    return request.get_full_path()


class ConsoleView(View):
    """Every console page: rendering helpers and the mapping of domain errors to error pages."""

    template_name: ClassVar[str] = ""
    http_method_names: ClassVar[list[str]] = ["get", "post", "head", "options"]
    # Methods below which no subclass may override; collected from every base in the MRO.
    _sealed: ClassVar[tuple[str, ...]] = ("dispatch",)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        sealed = {name for base in cls.__mro__[1:] for name in base.__dict__.get("_sealed", ())}
        for name in sealed & set(cls.__dict__):
            raise TypeError(f"{cls.__name__} overrides {name}: the console base must run for every page.")

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            early = self.prepare(request)
            if early is not None:
                return early
            return super().dispatch(request, *args, **kwargs)
        except errors.DomainError as exc:
            # Handlers turn the errors a person can fix into form errors or messages; what is left
            # (not found, forbidden, or a refusal outside any form) ends on an error page.
            return self.error_page(exc)

    def prepare(self, request: HttpRequest) -> HttpResponse | None:
        """Runs before the handler; a returned response ends the request."""
        return None

    @property
    def is_htmx(self) -> bool:
        return self.request.headers.get("HX-Request") == "true"

    def render_page(self, context: dict[str, Any] | None = None, *, template_name: str | None = None,
                    status: int = 200) -> HttpResponse:
        return render(self.request, template_name or self.template_name, context or {}, status=status)

    def error_page(self, exc: errors.DomainError) -> HttpResponse:
        if self.is_htmx:
            response = self.error_fragment(exc)
        else:
            response = render(self.request, "console/error.html", {"error": exc}, status=exc.status_code)
        if isinstance(exc, errors.RateLimited):
            response["Retry-After"] = str(exc.retry_after)
        return response

    def error_fragment(self, exc: errors.DomainError) -> HttpResponse:
        """An htmx request's refusal: a one-line message with the error's status, which htmx does not swap in;
        the console's script (js/console.js) shows it next to the element that made the request."""
        return render(self.request, "console/_error_fragment.html", {"detail": exc.detail}, status=exc.status_code)


class OrganizationConsoleView(ConsoleView):
    """A page inside an organization: logged in, principal resolved, ``required_perm`` held."""

    required_perm: ClassVar[str] = Perm.READ
    # Pages whose only action is refused to a principal limited to projects (creating or deleting a project):
    # refused up front rather than shown with a button that answers 403.
    organization_wide: ClassVar[bool] = False
    # The pages a person whose organization requires two-factor login may see before turning it on.
    open_without_two_factor: ClassVar[bool] = False
    _sealed = ("dispatch", "prepare")
    principal: Principal

    def prepare(self, request: HttpRequest) -> HttpResponse | None:
        if not request.user.is_authenticated:
            if self.is_htmx:
                # Following the redirect, htmx would swap the login page into a table row: reload instead, to
                # the login page and back to the page the request came from.
                response = HttpResponse(status=401)
                response["HX-Redirect"] = redirect_to_login(_htmx_page(request))["Location"]
                return response
            return redirect_to_login(request.get_full_path())
        self.principal = self._resolve_principal(request)
        # Before the principal is handed to the templates: the refusal page shows nothing of the organization.
        try:
            network_access_check(self.principal, surface="console")
        except AddressNotAllowed:
            # The allowlist guards its organization's data, not the person: one who belongs elsewhere too carries
            # on in an organization that lets this address in (and may still switch, log out, end sessions).
            allowed = principal_allowed_from_address(request.user, **request_ip_and_agent(request),
                                                     excluding=self.principal.organization.pk)
            if allowed is None:
                raise
            messages.warning(request, f"{self.principal.organization.name} accepts the console only from the "
                                      f"networks on its IP allowlist, so you are in {allowed.organization.name}.")
            request.session[SESSION_ORGANIZATION_KEY] = allowed.organization.pk
            self.principal = allowed
        if not self.open_without_two_factor and not two_factor_policy_met(self.principal):
            messages.warning(request, f"{self.principal.organization.name} requires two-factor login: set it up "
                                      f"to continue.")
            if self.is_htmx:
                response = HttpResponse(status=403)
                response["HX-Redirect"] = reverse("console:two-factor")
                return response
            return redirect("console:two-factor")
        request.principal = self.principal
        request_context.bind(organization_id=self.principal.organization.pk)  # the request's log lines name it
        self.principal.require(self.required_perm)
        if self.organization_wide and self.principal.is_project_limited:
            raise errors.PermissionDenied("Members limited to some projects cannot create or delete projects.")
        return None

    @staticmethod
    def _resolve_principal(request: HttpRequest) -> Principal:
        chosen = request.session.get(SESSION_ORGANIZATION_KEY)
        try:
            principal = principal_for_user(request.user, chosen, **request_ip_and_agent(request))
        except errors.NotFound:
            # The organization was left or deleted since it was chosen: fall back to the first one.
            principal = principal_for_user(request.user, None, **request_ip_and_agent(request))
        if chosen != principal.organization.pk:
            # Only on a change: assigning marks the session modified, which costs a write and a cookie per page.
            request.session[SESSION_ORGANIZATION_KEY] = principal.organization.pk
        return principal


class ConsoleFormMixin:
    """GET shows the form; POST validates it, calls ``form_valid`` and shows refusals on the form."""

    form_class: ClassVar[type[forms.Form]]
    request: HttpRequest

    def get_form_kwargs(self) -> dict[str, Any]:
        return {}

    def get_form(self, data: Any = None) -> forms.Form:
        return self.form_class(data, **self.get_form_kwargs())

    def get_context(self, form: forms.Form) -> dict[str, Any]:
        return {"form": form}

    def form_valid(self, form: forms.Form) -> HttpResponse:
        raise NotImplementedError(f"{type(self).__name__} must implement form_valid(form)")

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return self.render_page(self.get_context(self.get_form()))

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        form = self.get_form(request.POST)
        if form.is_valid():
            try:
                return self.form_valid(form)
            except _PAGE_ERRORS:
                raise
            except errors.DomainError as exc:
                form_add_domain_error(form, exc)
        return self.render_page(self.get_context(form), status=400)


class OrganizationFormView(ConsoleFormMixin, OrganizationConsoleView):
    """A form page inside an organization."""


class RowActionView(OrganizationConsoleView):
    """A POST that changes one row of a table (revoke, remove).

    With htmx the response replaces the row (nothing, once the row is gone) and updates the flash
    messages out of band; a plain form submit redirects back to the list with the message.
    """

    http_method_names: ClassVar[list[str]] = ["post"]
    row_template: ClassVar[str]
    list_url_name: ClassVar[str]
    # Set by ``perform`` when the list itself is no longer the right place (e.g. after leaving).
    redirect_to: str | None = None

    def get_object(self, object_id: str) -> models.Model:
        raise NotImplementedError

    def perform(self, obj: models.Model) -> tuple[models.Model | None, str]:
        """Calls the service; returns the row to show again (None once it is gone) and a message."""
        raise NotImplementedError

    def describe_row(self, row: models.Model) -> models.Model:
        """Adds what the row template shows beyond the model's own fields."""
        return row

    def post(self, request: HttpRequest, object_id: str) -> HttpResponse:
        obj = self.get_object(object_id)
        row: models.Model | None
        try:
            row, message = self.perform(obj)
        except _PAGE_ERRORS:
            raise
        except errors.DomainError as exc:
            if self.is_htmx:
                return self.error_fragment(exc)  # shown next to the button; the row is unchanged
            row = obj
            messages.error(request, exc.detail)
        else:
            messages.success(request, message)
        if self.redirect_to is not None:
            response = HttpResponse(status=204) if self.is_htmx else redirect(self.redirect_to)
            if self.is_htmx:
                response["HX-Redirect"] = self.redirect_to
            return response
        if not self.is_htmx:
            return redirect(reverse(self.list_url_name))
        context = {"row": self.describe_row(row) if row is not None else None, "row_template": self.row_template}
        return self.render_page(context, template_name="console/_row_swap.html")
