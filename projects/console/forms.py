"""Console forms: they check shape only; every rule lives in the services they feed."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.html import format_html_join

from controlplane.countries import CountryField
from projects import selectors
from projects.models import Site
from projects.roles import ROLE_DESCRIPTIONS, Perm, Role, role_can_grant
from projects.tenancy import Principal


class LoginForm(forms.Form):
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}))
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


class SsoLoginForm(forms.Form):
    email = forms.EmailField(label="Work email",
                             widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}))


class TwoFactorCodeForm(forms.Form):
    """A code from the authenticator app (or, where offered, a recovery code)."""

    code = forms.CharField(
        label="Code", max_length=32, strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True, "spellcheck": "false",
                                      "autocapitalize": "off"}))

    def __init__(self, *args: Any, help_text: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["code"].help_text = help_text


class SignupForm(forms.Form):
    name = forms.CharField(max_length=100, required=False, label="Your name")
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
                               help_text="At least 10 characters.")
    organization_name = forms.CharField(max_length=100, label="Organization")
    site = forms.ChoiceField(choices=Site.choices, initial=Site.GLOBAL,
                             help_text="Where you are billed; it fixes the currency.")
    country = CountryField(help_text="Where your organization is based; billing details start from it.")


class ProjectForm(forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 3}))


class AccessForm(forms.Form):
    """A role and optional project limits, offering only what the current principal may hand out."""

    SCOPES = [("all", "All projects"), ("some", "Only the projects ticked below")]

    role = forms.ChoiceField()
    # Explicit, because "no project ticked" is ambiguous: a grant whose projects were all deleted is limited
    # to none, and merely saving its form (to change the role) must not widen it to every project. Without
    # the field (scripts, older pages) ticked projects mean "some" and none mean "all", like the API.
    scope = forms.ChoiceField(choices=SCOPES, required=False, widget=forms.RadioSelect, label="Access to")
    projects = forms.ModelMultipleChoiceField(
        queryset=None, required=False, widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args: Any, principal: Principal, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        grantable = [role for role in Role if role_can_grant(principal.role, role.value)]
        self.fields["role"].choices = [(role.value, role.label) for role in grantable]
        self.fields["role"].help_text = format_html_join(
            "", '<span class="role-line" data-role="{}"><strong>{}</strong>: {}</span>',
            ((role.value, role.label, ROLE_DESCRIPTIONS[role]) for role in grantable))
        self.fields["projects"].queryset = selectors.project_list(principal=principal).order_by("name")
        self.fields["projects"].label_from_instance = lambda project: project.name
        self.fields["scope"].initial = self.initial.get("scope", "all")
        if principal.is_project_limited:
            self.fields["scope"].choices = self.SCOPES[1:]
            self.fields["scope"].initial = "some"
            self.fields["projects"].help_text = "Tick at least one of your projects."

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        projects = data.get("projects")
        scope = data.get("scope") or ("some" if projects else "all")
        if scope == "some" and not projects:
            self.add_error("projects", "Tick at least one project, or give access to all projects.")
        if scope == "all":
            data["projects"] = []
        return data


class MemberForm(AccessForm):
    pass


class InvitationForm(AccessForm):
    email = forms.EmailField()
    field_order = ["email", "role", "scope", "projects"]

    def __init__(self, *args: Any, principal: Principal, **kwargs: Any) -> None:
        super().__init__(*args, principal=principal, **kwargs)
        # Most people invited build things; owner (the first choice) would hand out everything by default.
        if role_can_grant(principal.role, Role.DEVELOPER):
            self.fields["role"].initial = Role.DEVELOPER


class ApiKeyForm(AccessForm):
    name = forms.CharField(max_length=100)
    expires_at = forms.DateTimeField(
        required=False, label="Expires (UTC)", help_text="The key stops working then.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    service = forms.BooleanField(
        required=False, label="Organization service key",
        help_text="Belongs to the organization, not to you: it keeps working if you leave. Owners only.")
    field_order = ["name", "role", "scope", "projects", "expires_at", "service"]

    def __init__(self, *args: Any, principal: Principal, **kwargs: Any) -> None:
        super().__init__(*args, principal=principal, **kwargs)
        if not principal.has(Perm.API_KEYS_SERVICE):
            del self.fields["service"]


class InvitationAcceptForm(forms.Form):
    name = forms.CharField(max_length=100, required=False, label="Your name")
    password = forms.CharField(required=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def __init__(self, *args: Any, new_account: bool, signed_in: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if signed_in:
            del self.fields["name"], self.fields["password"]
            return
        # Without a session the password is what proves (or creates) the account: never optional.
        self.fields["password"].required = True
        if not new_account:
            del self.fields["name"]
            self.fields["password"].label = "Your password"
            self.fields["password"].widget.attrs["autocomplete"] = "current-password"
            self.fields["password"].help_text = ("The password of your existing account; not needed once you are "
                                                 "logged in with it.")
        else:
            self.fields["password"].label = "Choose a password"
            self.fields["password"].help_text = "At least 10 characters; it creates your account."


class PasswordResetForm(forms.Form):
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}))


class PasswordResetConfirmForm(forms.Form):
    new_password = forms.CharField(label="New password", help_text="At least 10 characters.", strip=False,
                                   widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))


class PasswordChangeForm(forms.Form):
    current_password = forms.CharField(label="Current password", strip=False,
                                       widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))
    new_password = forms.CharField(label="New password", help_text="At least 10 characters.", strip=False,
                                   widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))


class SecurityPolicyForm(forms.Form):
    ip_allowlist = forms.CharField(
        label="IP allowlist", required=False, widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text="One network per line (or separated by commas), IPv4 or IPv6 in CIDR notation, such as "
                  "203.0.113.0/24 or 2001:db8::/32. Empty: any address. The list must include your own address.")
    session_idle_timeout_minutes = forms.IntegerField(
        label="Idle timeout (minutes)", required=False, min_value=1,
        help_text="A console session ends after this long without a request. Empty: no limit of our own.")
    session_absolute_timeout_minutes = forms.IntegerField(
        label="Absolute timeout (minutes)", required=False, min_value=1,
        help_text="A console session ends this long after login, however active. Empty: no limit of our own.")
    end_sessions_on_removal = forms.BooleanField(
        label="Log removed members out", required=False,
        help_text="Removing a member ends every console session they have open.")
    require_two_factor = forms.BooleanField(
        label="Require two-factor login", required=False,
        help_text="Members without two-factor login are sent to set it up before anything else. Turn it on for "
                  "your own account first.")

    def clean_ip_allowlist(self) -> list[str]:
        text = self.cleaned_data["ip_allowlist"]
        return [entry.strip() for entry in text.replace(",", "\n").splitlines() if entry.strip()]


_SSO_ROLE_CHOICES = [("admin", "Admin"), ("developer", "Developer"), ("billing", "Billing"), ("viewer", "Viewer")]


class SsoSettingsForm(forms.Form):
    """The organization's OpenID Provider (issue 17)."""

    issuer = forms.URLField(label="Issuer URL", max_length=300, assume_scheme="https",
                            help_text="Your IdP's issuer; its discovery document is read from "
                                      "/.well-known/openid-configuration under it.")
    client_id = forms.CharField(label="Client ID", max_length=200)
    client_secret = forms.CharField(label="Client secret", max_length=500, required=False,
                                    widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
                                    help_text="Stored encrypted. Leave empty to keep the current one.")
    groups_claim = forms.CharField(label="Groups claim", max_length=100, initial="groups",
                                   help_text="The ID token claim that lists the person's groups.")
    default_role = forms.ChoiceField(label="Default role", choices=_SSO_ROLE_CHOICES, initial="viewer",
                                     help_text="The role of a person in none of the mapped groups.")
    group_mappings = forms.CharField(
        label="Group mappings", required=False, widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text="One per line: group = role, optionally followed by : and project ids the member is limited to "
                  "(mq-admins = admin, mq-iot = developer: prj_abc). The first matching line wins.")
    require_sso = forms.BooleanField(
        label="Require SSO", required=False,
        help_text="People of the verified domains cannot log in with a password, except break-glass owners.")

    def clean_group_mappings(self) -> list[dict[str, object]]:
        mappings = []
        for number, line in enumerate(self.cleaned_data["group_mappings"].splitlines(), start=1):
            if not line.strip():
                continue
            group, sep, rest = line.partition("=")
            role, _, projects = rest.partition(":")
            if not sep or not group.strip() or not role.strip():
                raise forms.ValidationError(f"Line {number}: write group = role.")
            mappings.append({"group": group.strip(), "role": role.strip().lower(),
                             "projects": [p.strip() for p in projects.split(",") if p.strip()]})
        return mappings


class SsoDomainForm(forms.Form):
    domain = forms.CharField(label="Domain", max_length=253, help_text="Such as example.com.")
    mailbox = forms.ChoiceField(label="Verification mail to", choices=[
        (name, f"{name}@ the domain") for name in ("admin", "administrator", "hostmaster", "postmaster",
                                                   "webmaster")])
