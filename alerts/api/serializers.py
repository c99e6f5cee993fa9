"""Input serializers check shape; output serializers render (secrets never leave)."""

from __future__ import annotations

import json

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from alerts import selectors
from alerts.models import (
    RULE_METRICS,
    Alert,
    AlertChannel,
    AlertRule,
    ChannelType,
    Notification,
    Operator,
    Severity,
)
from controlplane.api.serializers import InputSerializer, PrefixedIdListField

MASK = "•••"


class ChannelIn(InputSerializer):
    name = serializers.CharField(max_length=100)
    type = serializers.ChoiceField(choices=ChannelType.choices)
    config = serializers.DictField(help_text="email: {recipients: [..]} (max 20); pagerduty: {routing_key} "
                                             "(32 chars); webhook: {url, secret, headers}. Secrets are write-only.")


class ChannelPatchIn(InputSerializer):
    name = serializers.CharField(max_length=100, required=False)
    config = serializers.DictField(required=False, help_text="Keys given replace the stored ones.")
    enabled = serializers.BooleanField(required=False)


class ChannelOut(serializers.ModelSerializer):
    config = serializers.SerializerMethodField(help_text="Secrets shown masked: `•••`. A webhook `url` keeps only "
                                               "scheme, host and port (`https://hooks.example.com/***`) for "
                                               "whoever may not change channels.")
    last_delivery = serializers.SerializerMethodField()
    default = serializers.SerializerMethodField(help_text="The organization's default channel (to its owners), "
                                                "created with its first project; editable and deletable.")

    class Meta:
        model = AlertChannel
        fields = ["id", "name", "type", "config", "enabled", "disabled_reason", "default", "last_delivery",
                  "created_at", "updated_at"]
        read_only_fields = fields

    @extend_schema_field(serializers.DictField())
    def get_config(self, obj: AlertChannel) -> dict:
        config = dict(obj.config)
        if obj.type == ChannelType.PAGERDUTY:
            config.update({"routing_key": MASK if obj.secret else None, "has_routing_key": bool(obj.secret)})
        elif obj.type == ChannelType.WEBHOOK:
            # Masked unless the view says the reader may change the channel (``show_webhook_urls``).
            if not self.context.get("show_webhook_urls") and config.get("url"):
                config["url"] = selectors.webhook_url_masked(config["url"])
            headers = json.loads(obj.headers or "{}")
            config.update({"secret": MASK if obj.secret else None, "has_secret": bool(obj.secret),
                           "headers": dict.fromkeys(headers, MASK)})
        return config

    def get_default(self, obj: AlertChannel) -> bool:
        return bool(obj.default_key)

    @extend_schema_field(serializers.DictField(allow_null=True))
    def get_last_delivery(self, obj: AlertChannel) -> dict | None:
        last = selectors.channel_last_delivery(obj)
        if last is None:
            return None
        return {"id": last.id, "kind": last.kind, "status": last.status, "status_code": last.status_code,
                "error": last.last_error, "at": last.created_at.isoformat()}


class ChannelTestOut(serializers.Serializer):
    delivered = serializers.BooleanField()
    status_code = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_null=True, allow_blank=True,
                                  help_text="Why it failed: the status and a reason, never the response body.")
    latency_ms = serializers.FloatField(allow_null=True, help_text="The HTTP round trip (null for email, or when "
                                                                   "no answer came).")
    delivery = serializers.CharField(help_text="The notification id (see /notifications).")


class RuleIn(InputSerializer):
    name = serializers.CharField(max_length=100)
    project = serializers.RegexField(r"^prj_[a-z0-9]{1,28}$", max_length=32)
    deployment = serializers.RegexField(r"^dep_[a-z0-9]{1,28}$", max_length=32, required=False, allow_null=True)
    metric = serializers.ChoiceField(choices=RULE_METRICS, help_text="A metric; or a condition that is 1 while it "
                                     "holds, else 0 (use `>= 1`): `deployment_failed`, `peering_failed` (per "
                                     "deployment) or `payment_failed` (per organization: its incidents have no "
                                     "deployment); or `certificate_expiry_days`, the days until the deployment's TLS "
                                     "server certificate expires (e.g. `< 14`).")
    operator = serializers.ChoiceField(choices=Operator.choices)
    threshold = serializers.DecimalField(max_digits=14, decimal_places=4)
    duration_s = serializers.IntegerField(min_value=0, max_value=86400, default=300)
    severity = serializers.ChoiceField(choices=Severity.choices, default=Severity.WARNING)
    channels = PrefixedIdListField(prefix="ach", max_length=20, default=list)
    repeat_interval_s = serializers.IntegerField(min_value=0, max_value=7 * 86400, default=3600)
    enabled = serializers.BooleanField(default=True)


class RulePatchIn(InputSerializer):
    name = serializers.CharField(max_length=100, required=False)
    deployment = serializers.RegexField(r"^dep_[a-z0-9]{1,28}$", max_length=32, required=False, allow_null=True)
    metric = serializers.ChoiceField(choices=RULE_METRICS, required=False)
    operator = serializers.ChoiceField(choices=Operator.choices, required=False)
    threshold = serializers.DecimalField(max_digits=14, decimal_places=4, required=False)
    duration_s = serializers.IntegerField(min_value=0, max_value=86400, required=False)
    severity = serializers.ChoiceField(choices=Severity.choices, required=False)
    channels = PrefixedIdListField(prefix="ach", max_length=20, required=False)
    repeat_interval_s = serializers.IntegerField(min_value=0, max_value=7 * 86400, required=False)
    enabled = serializers.BooleanField(required=False)


class RuleOut(serializers.ModelSerializer):
    project = serializers.CharField(source="project_id")
    deployment = serializers.CharField(source="deployment_id", allow_null=True)
    channels = serializers.SerializerMethodField()
    default = serializers.SerializerMethodField(help_text="Created with the project (editable and deletable).")

    class Meta:
        model = AlertRule
        fields = ["id", "name", "project", "deployment", "metric", "operator", "threshold", "duration_s", "severity",
                  "channels", "repeat_interval_s", "enabled", "default", "created_at", "updated_at"]
        read_only_fields = fields

    def get_channels(self, obj: AlertRule) -> list[str]:
        return sorted(c.id for c in obj.channels.all())

    def get_default(self, obj: AlertRule) -> bool:
        return bool(obj.default_key)


class AlertOut(serializers.ModelSerializer):
    rule = serializers.CharField(source="rule_id")
    deployment = serializers.CharField(source="deployment_id", allow_null=True,
                                       help_text="null for an organization condition such as payment_failed")

    class Meta:
        model = Alert
        fields = ["id", "rule", "deployment", "state", "started_at", "resolved_at", "value", "last_notified_at"]
        read_only_fields = fields


class NotificationOut(serializers.ModelSerializer):
    channel = serializers.CharField(source="channel_id")
    alert = serializers.CharField(source="alert_id", allow_null=True)

    class Meta:
        model = Notification
        fields = ["id", "channel", "alert", "kind", "status", "attempts", "status_code", "last_error",
                  "next_attempt_at", "delivered_at", "created_at"]
        read_only_fields = fields
