"""Forms of the alerts console pages. They only shape input; the services validate what they store."""

from __future__ import annotations

from typing import Any

from django import forms

from alerts.console.metric_names import metric_choices
from alerts.models import ChannelType, Operator, Severity


def _lines(value: str) -> list[str]:
    return [part.strip() for part in value.replace(",", "\n").splitlines() if part.strip()]


class ChannelForm(forms.Form):
    """One form for every type; only the fields of the chosen type are sent to the service.

    Secrets (routing key, webhook secret, headers) are write-only: the edit form starts them empty and an
    empty field keeps what is stored.
    """

    name = forms.CharField(max_length=100)
    type = forms.ChoiceField(choices=ChannelType.choices)
    recipients = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                                 help_text="Email: one address per line.")
    routing_key = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                                  help_text="PagerDuty: the 32-character Events API v2 integration key.")
    url = forms.CharField(required=False, max_length=2000, label="URL", help_text="Webhook: the https URL to POST to.")
    secret = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                             help_text="Webhook signing secret (whsec_…); empty generates one on create.")
    headers = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                              help_text="Webhook custom headers, one 'Name: value' per line.")
    clear_headers = forms.BooleanField(required=False, label="Remove all custom headers")
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, editing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.editing = editing
        if editing:
            self.fields["type"].disabled = True
            self.fields["routing_key"].help_text = "Leave empty to keep the stored key."
            self.fields["secret"].help_text = "Leave empty to keep the stored secret."
            self.fields["headers"].help_text = "Leave empty to keep the stored headers; 'Name: value' per line."
        else:
            del self.fields["clear_headers"]
            del self.fields["enabled"]

    def clean_headers(self) -> dict[str, str] | None:
        text = self.cleaned_data["headers"]
        if not text.strip():
            return None
        headers: dict[str, str] = {}
        for line in text.splitlines():
            if not line.strip():
                continue
            name, sep, value = line.partition(":")
            if not sep or not name.strip():
                raise forms.ValidationError(f"{line.strip()!r} is not 'Name: value'.")
            headers[name.strip()] = value.strip()
        return headers

    def config(self) -> dict[str, Any]:
        """The service's ``config`` for the chosen type, without the write-only values left empty."""
        data = self.cleaned_data
        kind = data["type"]
        if kind == ChannelType.EMAIL:
            return {"recipients": _lines(data["recipients"])}
        if kind == ChannelType.PAGERDUTY:
            return {"routing_key": data["routing_key"].strip()} if data["routing_key"].strip() or not self.editing \
                else {}
        config: dict[str, Any] = {"url": data["url"].strip()}
        if data["secret"]:
            config["secret"] = data["secret"]
        if data["headers"] is not None:
            config["headers"] = data["headers"]
        elif data.get("clear_headers"):
            config["headers"] = {}
        return config


class RuleForm(forms.Form):
    name = forms.CharField(max_length=100)
    project = forms.ChoiceField()
    deployment = forms.ChoiceField(required=False, help_text="Empty: every deployment of the project.")
    metric = forms.ChoiceField(choices=metric_choices)
    operator = forms.ChoiceField(choices=Operator.choices)
    threshold = forms.DecimalField(max_digits=14, decimal_places=4,
                                   help_text="In the metric's unit: 80 for 80 % of the spec's limit; 1 for a "
                                             "condition that holds.")
    duration_s = forms.IntegerField(min_value=0, initial=300, label="Duration (seconds)",
                                    help_text="How long the condition must hold before the rule fires.")
    severity = forms.ChoiceField(choices=Severity.choices, initial=Severity.WARNING)
    channels = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    repeat_interval_s = forms.IntegerField(min_value=0, initial=3600, label="Repeat interval (seconds)",
                                           help_text="0: notify once per incident.")
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, projects: list, deployments: list, channels: list, editing: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].choices = [(p.id, p.name) for p in projects]
        self.fields["deployment"].choices = [("", "All deployments of the project")] + [
            (d.id, f"{d.name} ({d.project.name})") for d in deployments]
        self.fields["channels"].choices = [(c.id, f"{c.name} ({c.get_type_display()})") for c in channels]
        if editing:
            self.fields["project"].disabled = True
