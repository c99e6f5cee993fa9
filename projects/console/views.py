"""Console pages. Thin: a selector to read, a service to write, a template to render.

Every page derives from ``projects.console.base``: public pages (login, signup, the invitation link) from
``ConsoleView``, everything inside an organization from ``OrganizationConsoleView``.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout, update_session_auth_hash
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.http import url_has_allowed_host_and_scheme

from controlplane import errors, ratelimit
from projects import accounts, selectors, services
from projects.console import forms as console_forms
from projects.console.base import (
    SESSION_ORGANIZATION_KEY,
    ConsoleFormMixin,
    ConsoleView,
    OrganizationConsoleView,
    OrganizationFormView,
    RowActionView,
    request_ip_and_agent,
)
from projects.filters import AuditEventFilter
from projects.models import ApiKey, Invitation, Membership, Project
from projects.roles import Perm
from projects.tenancy import Principal, client_ip, principal_for_user

AUDIT_PAGE_SIZE = 50
# A new API key's secret between the POST that makes it and the one page that shows it.
SESSION_NEW_KEY_SECRET = "new_api_key_secret"
AUDIT_MAX_PAGE = 1_000_000
# The filter set is shared with the API, whose labels are generated from lookups; people read these.
AUDIT_FILTER_FIELDS = {
    "actor": ("Actor", "email or usr_… / key_…", "search"),
    "action": ("Action", "project or project.create", "search"),
    "target": ("Target", "prj_…, key_…", "search"),
    "since": ("Since (UTC)", "", "datetime-local"),
}


def _safe_next_url(request: HttpRequest) -> str:
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
            return redirect(_safe_next_url(request))
        return super().get(request, *args, **kwargs)

    def get_context(self, form: forms.Form) -> dict[str, Any]:
        return {"form": form, "next": _safe_next_url(self.request)}

    def form_valid(self, form: forms.Form) -> HttpResponse:
        try:
            user = services.login_authenticate(email=form.cleaned_data["email"], password=form.cleaned_data["password"],
                                               ip=client_ip(self.request), request=self.request)
        except services.LoginLocked as exc:
            minutes = max(1, settings.LOGIN_LOCKOUT_SECONDS // 60)
            raise services.LoginLocked(f"{exc.detail} Logins are paused for up to {minutes} minutes.",
                                       retry_after=exc.retry_after) from exc
        login(self.request, user)
        return redirect(_safe_next_url(self.request))


class LogoutView(ConsoleView):
    http_method_names: ClassVar[list[str]] = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        logout(request)
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
        organization, user, _api_key, _secret = services.signup(**form.cleaned_data, with_api_key=False,
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
                                        **request_ip_and_agent(self.request))
        update_session_auth_hash(self.request, user)
        messages.success(self.request, "Your password is changed. Your other sessions are logged out.")
        return redirect("console:password-change")


class OrganizationSwitchView(OrganizationConsoleView):
    http_method_names: ClassVar[list[str]] = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        chosen = principal_for_user(request.user, request.POST.get("organization_id") or None,
                                    **request_ip_and_agent(request))
        request.session[SESSION_ORGANIZATION_KEY] = chosen.organization.pk
        messages.info(request, f"Switched to {chosen.organization.name}.")
        # Not back to the page we came from: its object belongs to the previous organization.
        return redirect("console:home")


# --- projects ---------------------------------------------------------------------------------------
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
        project = services.project_create(principal=self.principal, **form.cleaned_data)
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
        project = services.project_update(principal=self.principal, project=self.project, **form.cleaned_data)
        messages.success(self.request, f"Project {project.name} saved.")
        return redirect("console:home")


class ProjectDeleteView(_ProjectObjectMixin, OrganizationFormView):
    template_name = "console/project_delete.html"
    form_class = forms.Form  # a confirmation: nothing to fill in
    required_perm = Perm.PROJECTS_WRITE
    organization_wide = True

    def form_valid(self, form: forms.Form) -> HttpResponse:
        services.project_delete(principal=self.principal, project=self.project)
        messages.success(self.request, f"Project {self.project.name} deleted.")
        return redirect("console:home")


# --- members and invitations ------------------------------------------------------------------------
def _describe_members(principal: Principal, members: list[Membership]) -> list[Membership]:
    """Adds what the member rows show: project names, and whether the principal may change the member."""
    names = dict(selectors.project_list(principal=principal).values_list("id", "name"))
    may_manage = principal.has(Perm.MEMBERS_MANAGE)
    for member in members:
        limit = member.project_limit()
        limited_to = sorted(limit or ())
        member.limited = limit is not None
        member.project_names = sorted(names[pid] for pid in limited_to if pid in names)
        member.hidden_project_count = sum(1 for pid in limited_to if pid not in names)
        member.is_self = principal.membership is not None and principal.membership.pk == member.pk
        member.manageable = may_manage and not member.is_self and services.may_grant(
            principal=principal, role=member.role, limit=member.project_limit())
    return members


class MemberListView(OrganizationConsoleView):
    template_name = "console/members.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        members = list(selectors.member_list(principal=self.principal).order_by("created_at", "id"))
        context: dict[str, Any] = {"members": _describe_members(self.principal, members)}
        if self.principal.has(Perm.MEMBERS_MANAGE):
            context["invitations"] = selectors.invitation_list(principal=self.principal).order_by("-created_at")
        return self.render_page(context)


class MemberEditView(OrganizationFormView):
    template_name = "console/member_form.html"
    form_class = console_forms.MemberForm
    required_perm = Perm.MEMBERS_MANAGE

    @cached_property
    def member(self) -> Membership:
        member = selectors.member_get(principal=self.principal, member_id=self.kwargs["member_id"])
        if not services.may_grant(principal=self.principal, role=member.role, limit=member.project_limit()):
            raise errors.PermissionDenied(f"Your role ({self.principal.role}) cannot change this {member.role}.")
        return member

    def get_form_kwargs(self) -> dict[str, Any]:
        limit = self.member.project_limit()
        initial = {"role": self.member.role, "projects": sorted(limit or ()),
                   "scope": "all" if limit is None else "some"}
        return {"principal": self.principal, "initial": initial}

    def get_context(self, form: forms.Form) -> dict[str, Any]:
        return {"form": form, "member": self.member}

    def form_valid(self, form: forms.Form) -> HttpResponse:
        services.member_update(principal=self.principal, member=self.member, role=form.cleaned_data["role"],
                               projects=list(form.cleaned_data["projects"]))
        messages.success(self.request, f"{self.member.user.email} updated.")
        return redirect("console:members")


class MemberRemoveView(RowActionView):
    row_template = "console/_member_row.html"
    list_url_name = "console:members"
    # Anyone may leave; removing someone else is checked by the service.
    required_perm = Perm.READ

    def get_object(self, object_id: str) -> Model:
        return selectors.member_get(principal=self.principal, member_id=object_id)

    def perform(self, obj: Model) -> tuple[Model | None, str]:
        services.member_remove(principal=self.principal, member=obj)
        if self.principal.membership is not None and self.principal.membership.pk == obj.pk:
            # This organization is gone for the person who left; the base falls back to another one.
            self.redirect_to = reverse("console:home")
            return None, f"You left {self.principal.organization.name}."
        return None, f"{obj.user.email} is no longer a member."

    def describe_row(self, row: Model) -> Model:
        return _describe_members(self.principal, [row])[0]


class InvitationCreateView(OrganizationFormView):
    template_name = "console/invitation_form.html"
    form_class = console_forms.InvitationForm
    required_perm = Perm.MEMBERS_MANAGE

    def get_form_kwargs(self) -> dict[str, Any]:
        return {"principal": self.principal}

    def form_valid(self, form: forms.Form) -> HttpResponse:
        invitation = services.invitation_create(principal=self.principal, email=form.cleaned_data["email"],
                                                role=form.cleaned_data["role"],
                                                projects=list(form.cleaned_data["projects"]))
        messages.success(self.request, f"Invitation sent to {invitation.email}.")
        return redirect("console:members")


class InvitationRevokeView(RowActionView):
    row_template = "console/_invitation_row.html"
    list_url_name = "console:members"
    required_perm = Perm.MEMBERS_MANAGE

    def get_object(self, object_id: str) -> Model:
        return selectors.invitation_get(principal=self.principal, invitation_id=object_id)

    def perform(self, obj: Model) -> tuple[Model | None, str]:
        invitation = services.invitation_revoke(principal=self.principal, invitation=obj)
        return invitation, f"The invitation to {invitation.email} is revoked."


class InvitationAcceptView(ConsoleFormMixin, ConsoleView):
    """The link in the invitation email; works logged in, logged out, and for a brand-new person."""

    template_name = "console/invitation_accept.html"
    form_class = console_forms.InvitationAcceptForm

    @cached_property
    def invitation(self) -> Invitation:
        return selectors.invitation_get_by_token(token=self.kwargs["token"])

    @cached_property
    def new_account(self) -> bool:
        return not selectors.user_exists(email=self.invitation.email)

    @property
    def signed_in_as_invitee(self) -> bool:
        user = self.request.user
        return user.is_authenticated and user.email == self.invitation.email

    def get_form_kwargs(self) -> dict[str, Any]:
        return {"new_account": self.new_account, "signed_in": self.signed_in_as_invitee}

    def get_context(self, form: forms.Form) -> dict[str, Any]:
        user = self.request.user
        return {
            "form": form,
            "invitation": self.invitation,
            "is_pending": self.invitation.status == Invitation.Status.PENDING and not self.invitation.is_expired,
            "new_account": self.new_account,
            "signed_in": self.signed_in_as_invitee,
            "signed_in_as_other": user.is_authenticated and not self.signed_in_as_invitee,
            "login_url": f"{reverse('console:login')}?next={self.request.path}",
        }

    def form_valid(self, form: forms.Form) -> HttpResponse:
        user = self.request.user
        membership = services.invitation_accept(
            token=self.kwargs["token"],
            password=form.cleaned_data.get("password") or None,
            name=form.cleaned_data.get("name", ""),
            session_user=user if user.is_authenticated else None,
            **request_ip_and_agent(self.request),
        )
        login(self.request, membership.user)
        self.request.session[SESSION_ORGANIZATION_KEY] = membership.organization_id
        messages.success(self.request, f"You joined {membership.organization.name} as {membership.role}.")
        return redirect("console:home")


# --- API keys ---------------------------------------------------------------------------------------
def _describe_api_keys(principal: Principal, api_keys: list[ApiKey]) -> list[ApiKey]:
    """Adds whether the principal may revoke each key (the service's check), so the row offers only that."""
    for api_key in api_keys:
        api_key.revocable = services.may_grant(principal=principal, role=api_key.role, limit=api_key.project_limit())
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
        api_key, secret = services.api_key_create(
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
        api_key: ApiKey = services.api_key_revoke(principal=self.principal, api_key=obj)
        return api_key, f"API key {api_key.name} is revoked; it stops working at once."

    def describe_row(self, row: Model) -> Model:
        return _describe_api_keys(self.principal, [row])[0]


# --- audit log and outbox ---------------------------------------------------------------------------
class AuditLogView(OrganizationConsoleView):
    template_name = "console/audit.html"
    required_perm = Perm.AUDIT_READ

    def get(self, request: HttpRequest) -> HttpResponse:
        events = selectors.audit_event_list(principal=self.principal).order_by("-created_at", "-id")
        event_filter = AuditEventFilter(request.GET, queryset=events)
        self._label_filter_form(event_filter.form)
        page = self._page_number(request)
        offset = (page - 1) * AUDIT_PAGE_SIZE
        rows = list(event_filter.qs[offset:offset + AUDIT_PAGE_SIZE + 1]) if event_filter.is_valid() else []
        return self.render_page({
            "filter_form": event_filter.form,
            "events": rows[:AUDIT_PAGE_SIZE],
            "filtered": any(request.GET.get(name) for name in event_filter.form.fields),
            "older_query": self._query_for_page(request, page + 1) if len(rows) > AUDIT_PAGE_SIZE else None,
            "newer_query": self._query_for_page(request, page - 1) if page > 1 else None,
            # A page past the last (an old link, a hand-edited number) leads back rather than looking empty.
            "first_query": self._query_for_page(request, 1) if page > 1 and not rows else None,
        })

    @staticmethod
    def _label_filter_form(form: forms.Form) -> None:
        for name, (label, placeholder, input_type) in AUDIT_FILTER_FIELDS.items():
            field = form.fields[name]
            field.label = label
            field.widget.input_type = input_type
            if placeholder:
                field.widget.attrs["placeholder"] = placeholder

    @staticmethod
    def _page_number(request: HttpRequest) -> int:
        # Capped: an offset past a 64-bit integer made the database refuse the query (a 500).
        try:
            return min(max(1, int(request.GET.get("page", "1"))), AUDIT_MAX_PAGE)
        except ValueError:
            return 1

    @staticmethod
    def _query_for_page(request: HttpRequest, page: int) -> str:
        query = request.GET.copy()
        query["page"] = str(page)
        return query.urlencode()


class OutboxView(OrganizationConsoleView):
    """What the embedded default would have mailed to this organization's people; there is no outbox anywhere
    else. Operators read all of it on the ops site."""

    template_name = "console/outbox.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        if not settings.EMBEDDED:
            raise errors.NotFound("The mail outbox exists only in the embedded default.")
        context = {"outbox": selectors.outbox_list(principal=self.principal)}
        if self.is_htmx:
            return self.render_page(context, template_name="console/_outbox_list.html")
        return self.render_page(context)
