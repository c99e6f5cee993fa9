"""Deployment console forms: they check shape only; every rule lives in the services they feed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import forms

from deployments.models import DeploymentStatus, Region, Spec, Weekday
from deployments.upgrades.models import UpgradeWhen
from projects.models import Project

NAME_HELP = ("A DNS label: lowercase letters, digits and hyphens, starting with a letter and not ending with a "
             "hyphen; up to 40 characters, unique within the project.")


class RegionSelect(forms.Select):
    """A region select whose options carry the tiers the region offers, so the page can grey out the rest."""

    def __init__(self, *args: Any, tiers: dict[str, list[str]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tiers = tiers or {}

    def create_option(self, name: str, value: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option = super().create_option(name, value, *args, **kwargs)
        if str(value) in self.tiers:
            option["attrs"]["data-tiers"] = " ".join(self.tiers[str(value)])
        return option


def region_choices(regions: Iterable[Region]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Regions grouped by cloud provider, for an <optgroup> each."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for region in regions:
        groups.setdefault(region.get_provider_display(), []).append((region.id, f"{region.name} ({region.code})"))
    return list(groups.items())


class DeploymentCreateForm(forms.Form):
    project = forms.ChoiceField()
    name = forms.CharField(max_length=40, help_text=NAME_HELP,
                           widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false",
                                                         "placeholder": "e.g. telemetry-eu"}))
    region = forms.ChoiceField(help_text="The cloud and region the brokers run in; it cannot change later.")
    spec = forms.ChoiceField(label="Size", widget=forms.RadioSelect,
                             error_messages={"required": "Choose a size.",
                                             "invalid_choice": "%(value)s is not a size you can choose."})

    def __init__(self, *args: Any, projects: Iterable[Project], regions: Iterable[Region], specs: Iterable[Spec],
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        regions = list(regions)
        self.fields["project"].choices = [(project.id, project.name) for project in projects]
        # The widget first: setting choices hands them to the field's current widget.
        self.fields["region"].widget = RegionSelect(tiers={region.id: list(region.tiers) for region in regions})
        self.fields["region"].choices = [("", "Choose a region…"), *region_choices(regions)]
        self.fields["spec"].choices = [(spec.id, spec.name) for spec in specs]


class DeploymentFilterForm(forms.Form):
    project = forms.ChoiceField(required=False)
    status = forms.ChoiceField(required=False, choices=[("", "Any status")] + [
        (value, label) for value, label in DeploymentStatus.choices if value != DeploymentStatus.DELETED
    ])

    def __init__(self, *args: Any, projects: Iterable[Project], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].choices = [("", "All projects")] + [(project.id, project.name) for project in projects]


class ScaleForm(forms.Form):
    spec = forms.ChoiceField(label="New size", error_messages={"required": "Choose the size to scale to."})

    def __init__(self, *args: Any, choices: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["spec"].choices = choices


class UpgradeForm(forms.Form):
    version = forms.ChoiceField(label="EMQX version", error_messages={"required": "Choose the version to upgrade to."})
    when = forms.ChoiceField(label="When", choices=UpgradeWhen.choices, initial=UpgradeWhen.NOW,
                             widget=forms.RadioSelect)

    def __init__(self, *args: Any, choices: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["version"].choices = choices


class ProtectionForm(forms.Form):
    deletion_protection = forms.BooleanField(required=False)


class DeleteConfirmForm(forms.Form):
    confirm_name = forms.CharField(label="Type the deployment name to confirm",
                                   widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}))

    def __init__(self, *args: Any, deployment_name: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deployment_name = deployment_name

    def clean_confirm_name(self) -> str:
        value = self.cleaned_data["confirm_name"].strip()
        if value != self.deployment_name:
            raise forms.ValidationError(f"Type {self.deployment_name} exactly to confirm.")
        return value


# --- custom HTTP authentication ---------------------------------------------------------------------
METHOD_CHOICES = [("post", "POST (params as a JSON body)"), ("get", "GET (params in the query string)")]
PLACEHOLDER_HELP = "One name=value per line; values may use ${clientid}, ${username}, ${password}, ${peerhost}, " \
                   "${cert_subject}"


def parse_lines(text: str, separator: str, what: str) -> dict[str, str]:
    """``Name: value`` (headers) or ``name=value`` (params) lines into a dict; blank lines are skipped."""
    result: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, found, value = line.partition(separator)
        if not found or not name.strip():
            raise forms.ValidationError(f"Line {number}: write {what}.")
        result[name.strip()] = value.strip()
    return result


class HttpAuthForm(forms.Form):
    """Both requests; the service checks every rule. Header values are write-only: the field starts empty,
    and left empty it keeps the stored headers (tick "remove" to drop them)."""

    enabled = forms.BooleanField(required=False, initial=True, label="Enabled")
    authn_method = forms.ChoiceField(choices=METHOD_CHOICES, label="Method")
    authn_url = forms.CharField(max_length=2048, label="URL",
                                widget=forms.URLInput(attrs={"placeholder": "https://auth.example.com/mqtt/auth"}))
    authn_headers = forms.CharField(required=False, label="Headers", widget=forms.Textarea(attrs={"rows": 3}),
                                    help_text="One 'Name: value' per line. Values are never shown again.")
    authn_headers_clear = forms.BooleanField(required=False, label="Remove the stored headers")
    authn_params = forms.CharField(required=False, label="Params", widget=forms.Textarea(attrs={"rows": 4}),
                                   help_text=PLACEHOLDER_HELP + ".")
    authn_timeout_ms = forms.IntegerField(min_value=100, max_value=10000, initial=5000, label="Timeout (ms)")

    authz_enabled = forms.BooleanField(required=False, label="Also authorize topics (ACL) over HTTP")
    authz_method = forms.ChoiceField(choices=METHOD_CHOICES, label="Method", required=False)
    authz_url = forms.CharField(max_length=2048, label="URL", required=False,
                                widget=forms.URLInput(attrs={"placeholder": "https://auth.example.com/mqtt/acl"}))
    authz_headers = forms.CharField(required=False, label="Headers", widget=forms.Textarea(attrs={"rows": 3}),
                                    help_text="One 'Name: value' per line. Values are never shown again.")
    authz_headers_clear = forms.BooleanField(required=False, label="Remove the stored headers")
    authz_params = forms.CharField(required=False, label="Params", widget=forms.Textarea(attrs={"rows": 4}),
                                   help_text=PLACEHOLDER_HELP + ", ${topic}, ${action}.")
    authz_timeout_ms = forms.IntegerField(min_value=100, max_value=10000, initial=5000, label="Timeout (ms)",
                                          required=False)

    def _lines(self, name: str, separator: str, what: str) -> dict[str, str]:
        return parse_lines(self.cleaned_data.get(name) or "", separator, what)

    def clean_authn_headers(self) -> dict[str, str]:
        return self._lines("authn_headers", ":", "'Name: value'")

    def clean_authz_headers(self) -> dict[str, str]:
        return self._lines("authz_headers", ":", "'Name: value'")

    def clean_authn_params(self) -> dict[str, str]:
        return self._lines("authn_params", "=", "name=value")

    def clean_authz_params(self) -> dict[str, str]:
        return self._lines("authz_params", "=", "name=value")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("authz_enabled"):
            for name in ("authz_method", "authz_url", "authz_timeout_ms"):
                if data.get(name) in (None, ""):
                    self.add_error(name, "Required for the ACL request.")
        return data


class HttpAuthTestForm(forms.Form):
    kind = forms.ChoiceField(choices=[("authentication", "Authentication"), ("authorization", "Authorization (ACL)")])
    clientid = forms.CharField(max_length=256, required=False, initial="test-client", label="Client ID")
    username = forms.CharField(max_length=256, required=False, label="Username", strip=False)
    password = forms.CharField(max_length=1024, required=False, label="Password", strip=False,
                               widget=forms.PasswordInput(render_value=False))
    peerhost = forms.CharField(max_length=64, required=False, initial="203.0.113.10", label="Peer host")
    topic = forms.CharField(max_length=1024, required=False, label="Topic (ACL)", strip=False)
    action = forms.ChoiceField(choices=[("publish", "publish"), ("subscribe", "subscribe")], label="Action (ACL)")


class MaintenanceWindowForm(forms.Form):
    """Shapes only: ``deployments.maintenance.validation`` names the bad values, shown next to these fields."""

    weekday = forms.ChoiceField(choices=[(label.lower(), label) for _, label in Weekday.choices])
    start_time = forms.CharField(label="Start time", max_length=16, help_text="Local time in the time zone below, "
                                 "HH:MM (24-hour). Kept across daylight saving changes.")
    length_minutes = forms.IntegerField(label="Length (minutes)", help_text="1 to 1440 (24 hours).")
    time_zone = forms.CharField(label="Time zone", max_length=64, help_text="An IANA name, e.g. Europe/Berlin.")


class MaintenanceExclusionForm(forms.Form):
    start_date = forms.DateField(label="First day", widget=forms.DateInput(attrs={"type": "date"}))
    end_date = forms.DateField(label="Last day", widget=forms.DateInput(attrs={"type": "date"}),
                               help_text="Included; at most 60 days after the first.")
    reason = forms.CharField(max_length=200, required=False, help_text="e.g. retail freeze")
