"""Ops console views of alerting: read-only (changes go through the API and its services)."""

from django.contrib import admin

from alerts.models import Alert, AlertChannel, AlertRule, Notification
from projects.ops_admin import ReadOnlyModelAdmin


@admin.register(AlertChannel)
class AlertChannelAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "organization", "name", "type", "enabled", "disabled_reason", "created_at")
    list_filter = ("type", "enabled")
    search_fields = ("id", "name", "organization__id")
    exclude = ("secret", "headers")  # write-only secrets: not even operators read them here


@admin.register(AlertRule)
class AlertRuleAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "organization", "project", "name", "metric", "operator", "threshold", "duration_s",
                    "severity", "enabled")
    list_filter = ("severity", "enabled", "metric")
    search_fields = ("id", "name", "organization__id")


@admin.register(Alert)
class AlertAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "organization", "rule", "deployment", "state", "started_at", "resolved_at", "value")
    list_filter = ("state",)
    search_fields = ("id", "rule__id", "deployment__id")


@admin.register(Notification)
class NotificationAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "organization", "channel", "alert", "kind", "status", "attempts", "status_code",
                    "last_error", "created_at")
    list_filter = ("kind", "status")
    search_fields = ("id", "channel__id", "alert__id")
