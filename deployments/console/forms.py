"""Deployment console forms: they check shape only; every rule lives in the services they feed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import forms

from deployments.models import DeploymentStatus, Region, Spec
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
