"""The ops site (/ops/): search and filters over tenants; changes go through services and are audited."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import PasswordChangeForm
from django.contrib.auth.views import PasswordChangeView
from django.core.exceptions import ValidationError
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import reverse_lazy

from controlplane import errors
from projects import accounts
from projects.models import ApiKey, AuditEvent, Invitation, Membership, Organization, Project, User
from projects.ops_admin import AuditedModelAdmin, ReadOnlyModelAdmin, ReadOnlyTabularInline, staff_principal
from projects.selectors import two_factor_enabled
from projects.services.api_keys import api_key_revoke
from projects.services.logins import LoginLocked, login_authenticate
from projects.services.organizations import organization_set_flagship
from projects.services.security import organization_security_update
from projects.services.two_factor import two_factor_login, two_factor_reset_by_operator
from projects.tenancy import client_ip


class OpsLoginForm(AdminAuthenticationForm):
    """The ops site's login, through the same counted password check as the console's, and the code of the
    operator's two-factor login, which every operator must have (an operator without it is sent to set it up).
    One form rather than two steps: the code is asked for beside the password."""

    code = forms.CharField(
        label="Two-factor code", required=False, max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "spellcheck": "false"}),
        help_text="From your authenticator app. The first time, leave it empty: you will set up the app.")

    def clean(self):
        email = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if email is not None and password:
            try:
                self.user_cache = login_authenticate(
                    email=email, password=password, ip=client_ip(self.request), request=self.request,
                    method="password (ops site)", user_agent=self.request.headers.get("User-Agent", "")[:256])
            except LoginLocked as exc:
                raise ValidationError(exc.detail, code="locked") from exc
            except errors.NotAuthenticated as exc:
                raise self.get_invalid_login_error() from exc
            self.confirm_login_allowed(self.user_cache)
            if not two_factor_enabled(self.user_cache):
                # The site is for operators with two-factor only (projects/ops_site.py), which takes ``setup_user``
                # from here to setting it up and logs them in only after the first right code.
                self.setup_user = self.user_cache
                raise ValidationError("Operators need two-factor login: set it up to continue.",
                                      code="two_factor_setup")
            self._second_factor(self.user_cache, self.cleaned_data.get("code") or "")
        return self.cleaned_data

    def _second_factor(self, user, code: str) -> None:
        if not code:
            raise ValidationError("This account uses two-factor login: enter the code from your app too.",
                                  code="two_factor_required")
        try:
            two_factor_login(user=user, code=code, ip=client_ip(self.request), method="password (ops site)",
                             user_agent=self.request.headers.get("User-Agent", "")[:256])
        except errors.DomainError as exc:
            raise ValidationError(exc.detail, code="two_factor_invalid") from exc


class OpsPasswordChangeForm(PasswordChangeForm):
    def clean_old_password(self) -> str:
        # Checked by accounts.password_change, counted like a login; Django's own check here is not.
        return self.cleaned_data["old_password"]


class OpsPasswordChangeView(PasswordChangeView):
    """The ops site's "Change password" (routed in controlplane/urls.py ahead of the admin's own): the
    console's service, so the old password is a counted login, the change audited, the lockout cleared."""

    form_class = OpsPasswordChangeForm
    success_url = reverse_lazy("admin:password_change_done")
    _FIELDS = {"current_password": "old_password", "new_password": "new_password2"}

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), **admin.site.each_context(self.request)}

    def form_valid(self, form) -> HttpResponse:
        try:
            user = accounts.password_change(user=self.request.user, current_password=form.cleaned_data["old_password"],
                                            new_password=form.cleaned_data["new_password2"],
                                            ip=client_ip(self.request),
                                            user_agent=self.request.headers.get("User-Agent", "")[:256])
        except errors.DomainError as exc:
            fields = {self._FIELDS[name]: texts for name, texts in exc.errors.items() if name in self._FIELDS}
            # A lockout has no field; the admin's page shows field errors only.
            for field, texts in (fields or {"old_password": [exc.detail]}).items():
                form.add_error(field, texts)
            return self.form_invalid(form)
        update_session_auth_hash(self.request, user)
        return HttpResponseRedirect(self.get_success_url())


admin.site.site_header = "mqcloud ops"
admin.site.site_title = "mqcloud ops"
admin.site.index_title = "Operations"
admin.site.login_form = OpsLoginForm
admin.site.login_template = "ops/login.html"


class MembershipInline(ReadOnlyTabularInline):
    model = Membership
    fields = ("id", "user", "role", "created_at")
    readonly_fields = fields
    show_change_link = True


@admin.register(Organization)
class OrganizationAdmin(AuditedModelAdmin):
    list_display = ("id", "name", "site", "country", "flagship_enabled", "created_at")
    list_filter = ("site", "flagship_enabled", "country")
    search_fields = ("id", "name", "memberships__user__email")
    # The security policy is the organization's to set (console, API); operators see it and can only clear the
    # allowlist, for a customer whose own address changed under it.
    readonly_fields = ("id", "site", "created_at", "ip_allowlist", "session_idle_timeout_minutes",
                       "session_absolute_timeout_minutes", "end_sessions_on_removal", "require_two_factor")
    fields = ("id", "name", "site", "country", "flagship_enabled", "created_at", "ip_allowlist",
              "session_idle_timeout_minutes", "session_absolute_timeout_minutes", "end_sessions_on_removal",
              "require_two_factor")
    inlines = [MembershipInline]
    actions = ["enable_flagship", "disable_flagship", "clear_ip_allowlist"]

    def has_add_permission(self, request) -> bool:
        return False  # organizations are created by signup only

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Enable the flagship tier trial")
    def enable_flagship(self, request, queryset) -> None:
        self._set_flagship(request, queryset, True)

    @admin.action(description="Disable the flagship tier")
    def disable_flagship(self, request, queryset) -> None:
        self._set_flagship(request, queryset, False)

    @admin.action(description="Clear the IP allowlist (a customer locked out)")
    def clear_ip_allowlist(self, request, queryset) -> None:
        cleared = 0
        for organization in queryset:
            if organization.ip_allowlist:
                organization_security_update(principal=staff_principal(request, organization), ip_allowlist=[])
                cleared += 1
        self.message_user(request, f"IP allowlist cleared for {cleared} organization(s).")

    def _set_flagship(self, request, queryset, enabled: bool) -> None:
        changed = 0
        for organization in queryset:
            if organization.flagship_enabled != enabled:
                organization_set_flagship(principal=staff_principal(request, organization), enabled=enabled)
                changed += 1
        self.message_user(request, f"Flagship {'enabled' if enabled else 'disabled'} for {changed} organization(s).")


@admin.register(User)
class UserAdmin(AuditedModelAdmin, DjangoUserAdmin):
    ordering = ("-date_joined",)
    list_display = ("id", "email", "name", "is_active", "is_staff", "date_joined", "last_login")
    list_filter = ("is_active", "is_staff")
    search_fields = ("id", "email", "name")
    readonly_fields = ("id", "email", "date_joined", "last_login")
    fieldsets = ((None, {"fields": ("id", "email", "name", "is_active", "is_staff", "date_joined", "last_login")}),)
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)
    filter_horizontal = ()
    actions = ["reset_two_factor"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Turn off two-factor login (phone and recovery codes lost; identity checked)")
    def reset_two_factor(self, request, queryset) -> None:
        reset = sum(two_factor_reset_by_operator(user=user, operator=request.user, ip=client_ip(request),
                                                 user_agent=request.headers.get("User-Agent", "")[:256])
                    for user in queryset)
        self.message_user(request, f"Two-factor login turned off for {reset} user(s); they can set it up again.")


@admin.register(Membership)
class MembershipAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "user", "organization", "role", "created_at")
    list_filter = ("role",)
    search_fields = ("id", "user__email", "organization__name", "organization__id")
    list_select_related = ("user", "organization")


@admin.register(Project)
class ProjectAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "name", "organization", "created_at")
    search_fields = ("id", "name", "organization__name", "organization__id")
    list_select_related = ("organization",)


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "email", "organization", "role", "status", "expires_at", "email_sent_at", "created_at")
    list_filter = ("status", "role")
    search_fields = ("id", "email", "organization__name", "organization__id")
    exclude = ("token_hash", "token_encrypted")
    list_select_related = ("organization",)


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "name", "organization", "role", "prefix", "created_by", "service", "created_at",
                    "expires_at", "revoked_at", "last_used_at")
    list_filter = ("role", "service")
    search_fields = ("id", "name", "prefix", "organization__name", "organization__id")
    exclude = ("secret_hash",)
    list_select_related = ("organization", "created_by__user")
    actions = ["revoke_keys"]

    def has_change_permission(self, request, obj=None) -> bool:
        # Needed for the revoke action to show; the form itself stays read-only (all fields below).
        return obj is None and request.user.is_staff

    @admin.action(description="Revoke selected API keys")
    def revoke_keys(self, request, queryset) -> None:
        for api_key in queryset.select_related("organization"):
            api_key_revoke(principal=staff_principal(request, api_key), api_key=api_key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyModelAdmin):
    list_display = ("created_at", "organization", "actor_type", "actor_label", "action", "target_type", "target_id",
                    "ip")
    list_filter = ("actor_type", "action")
    search_fields = ("id", "actor_label", "actor_id", "action", "target_id", "organization__id", "organization__name")
    date_hierarchy = "created_at"
    list_select_related = ("organization",)
