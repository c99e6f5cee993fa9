"""Console pages of the organization's members and invitations, and the invitation link's public page."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from controlplane import errors
from projects import selectors
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
from projects.models import Invitation, Membership
from projects.roles import Perm
from projects.services.grants import may_grant
from projects.services.invitations import invitation_accept, invitation_create, invitation_revoke
from projects.services.members import member_remove, member_update
from projects.tenancy import Principal


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
        member.manageable = may_manage and not member.is_self and may_grant(
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
        if not may_grant(principal=self.principal, role=member.role, limit=member.project_limit()):
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
        member_update(principal=self.principal, member=self.member, role=form.cleaned_data["role"],
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
        member_remove(principal=self.principal, member=obj)
        if self.principal.membership is not None and self.principal.membership.pk == obj.pk:
            # This organization is gone for the person who left; the base falls back to another one.
            self.redirect_to = reverse("console:home")
            return None, f"You left {self.principal.organization.name}."
        return None, f"{obj.user.email} is no longer a member."

    def describe_row(self, row: Model) -> Model:
        return _describe_members(self.principal, [row])[0]


def duration_in_words(seconds: int) -> str:
    """``7 days``, ``36 hours``, ``90 minutes``: the largest unit that states ``seconds`` exactly."""
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} second{'' if seconds == 1 else 's'}"


class InvitationCreateView(OrganizationFormView):
    template_name = "console/invitation_form.html"
    form_class = console_forms.InvitationForm
    required_perm = Perm.MEMBERS_MANAGE

    def get_form_kwargs(self) -> dict[str, Any]:
        return {"principal": self.principal}

    def get_context(self, form: forms.Form) -> dict[str, Any]:
        return {**super().get_context(form), "link_lifetime": duration_in_words(settings.INVITATION_TTL_SECONDS)}

    def form_valid(self, form: forms.Form) -> HttpResponse:
        invitation = invitation_create(principal=self.principal, email=form.cleaned_data["email"],
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
        invitation = invitation_revoke(principal=self.principal, invitation=obj)
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
        membership = invitation_accept(
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
