"""Forms of a deployment's Access area (MQTT users, import, ACL, clients): shapes only; the services in
``deployments.mqtt_access`` judge the values and their refusals are shown next to the fields."""

from __future__ import annotations

from typing import Any

from django import forms

from deployments.mqtt_access.imports import CSV_FORMAT
from deployments.mqtt_access.validation import PASSWORD_MAX_BYTES, USERNAME_MAX, Invalid, topic_filter_clean

IMPORT_FILE_MAX_BYTES = 20 * 1024 * 1024


class MqttUserFilterForm(forms.Form):
    username = forms.CharField(required=False, label="Username starts with")


class MqttUserCreateForm(forms.Form):
    username = forms.CharField(max_length=USERNAME_MAX, strip=False,
                               help_text="What the device sends as its MQTT username; compared ignoring case.")
    password = forms.CharField(
        required=False, strip=False, max_length=PASSWORD_MAX_BYTES,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 8 characters. Leave empty to have a strong one generated and shown once.")
    is_superuser = forms.BooleanField(required=False, label="Superuser",
                                      help_text="Skips the ACL: for back-end services only.")


class MqttUserPasswordForm(forms.Form):
    password = forms.CharField(
        required=False, strip=False, max_length=PASSWORD_MAX_BYTES, label="New password",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to have one generated and shown once.")


class MqttUserSuperuserForm(forms.Form):
    is_superuser = forms.BooleanField(required=False)


class MqttUsersImportForm(forms.Form):
    csv_text = forms.CharField(
        required=False, strip=False, label="Paste CSV",
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "autocomplete": "off"}),
        help_text=CSV_FORMAT)
    csv_file = forms.FileField(required=False, label="Or upload a .csv file")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        upload = data.get("csv_file")
        if upload is not None:
            if upload.size > IMPORT_FILE_MAX_BYTES:
                raise forms.ValidationError(f"The file is over {IMPORT_FILE_MAX_BYTES // (1024 * 1024)} MiB; "
                                            "split it.")
            try:
                data["csv_text"] = upload.read().decode("utf-8-sig")
            except UnicodeDecodeError:
                self.add_error("csv_file", "The file must be UTF-8 text.")
                return data
        if not (data.get("csv_text") or "").strip():
            self.add_error("csv_text", "Paste CSV or choose a file.")
        return data


# --- ACL --------------------------------------------------------------------------------------------
WHO_CHOICES = [("all", "Everyone"), ("username", "Username"), ("clientid", "Client ID")]


class AclRuleForm(forms.Form):
    permission = forms.ChoiceField(choices=[("allow", "Allow"), ("deny", "Deny")])
    who = forms.ChoiceField(choices=WHO_CHOICES, label="Who")
    who_value = forms.CharField(required=False, strip=False, max_length=USERNAME_MAX, label="Username or client ID")
    action = forms.ChoiceField(choices=[("all", "Publish and subscribe"), ("publish", "Publish"),
                                        ("subscribe", "Subscribe")])
    topics = forms.CharField(widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
                             label="Topics (one per line)")

    def clean_topics(self) -> str:
        """Each line checked as the service will (so every rule's problems show at once, not one kind first)."""
        topics = self.cleaned_data["topics"]
        problems = []
        for number, line in enumerate(topics.splitlines(), start=1):
            if line.strip():
                try:
                    topic_filter_clean(line.strip())
                except Invalid as exc:
                    problems.append(f"Line {number}: {exc}")
        if problems:
            raise forms.ValidationError(problems)
        return topics

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        who = data.get("who")
        if who in ("username", "clientid") and not data.get("who_value"):
            self.add_error("who_value", "Enter the username." if who == "username" else "Enter the client ID.")
        return data

    def rule(self) -> dict[str, Any]:
        """The rule as ``acl_put`` takes it."""
        data = self.cleaned_data
        topics = [line.strip() for line in data["topics"].splitlines() if line.strip()]
        who: str | dict[str, str] = "all" if data["who"] == "all" else {data["who"]: data["who_value"]}
        return {"permission": data["permission"], "who": who, "action": data["action"], "topics": topics}


AclRuleFormSet = forms.formset_factory(AclRuleForm, extra=0, max_num=500, absolute_max=500)


def acl_rule_initial(rule: dict[str, Any]) -> dict[str, Any]:
    """A stored rule as the editor shows it."""
    who = rule.get("who", "all")
    kind, value = next(iter(who.items())) if isinstance(who, dict) else ("all", "")
    return {"permission": rule.get("permission"), "who": kind, "who_value": value, "action": rule.get("action"),
            "topics": "\n".join(rule.get("topics", []))}


class AclNoMatchForm(forms.Form):
    no_match = forms.ChoiceField(choices=[("deny", "Deny"), ("allow", "Allow")], label="When no rule matches")


class AclCheckForm(forms.Form):
    username = forms.CharField(required=False, strip=False, max_length=USERNAME_MAX)
    clientid = forms.CharField(required=False, strip=False, max_length=USERNAME_MAX, label="Client ID")
    action = forms.ChoiceField(choices=[("publish", "Publish"), ("subscribe", "Subscribe")])
    topic = forms.CharField(strip=False, max_length=4096,
                            help_text="A topic to publish to, or a topic filter to subscribe to.")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        topic = data.get("topic") or ""
        if data.get("action") == "publish" and ("+" in topic or "#" in topic):
            self.add_error("topic", "A client publishes to a topic without wildcards (+ or #).")
        return data


# --- connected clients ------------------------------------------------------------------------------
class ClientFilterForm(forms.Form):
    clientid = forms.CharField(required=False, max_length=256, label="Client ID contains")
    username = forms.CharField(required=False, max_length=256, label="Username contains")


class ClientDisconnectForm(forms.Form):
    clientid = forms.CharField(max_length=65535, strip=False)
