"""Broker metrics samples, alert channels, alert rules, incidents (alerts) and notification deliveries."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from controlplane.crypto import EncryptedTextField
from controlplane.ids import PrefixedIdField

#: The public metric names (API.md): what ``GET /deployments/{id}/metrics`` serves and rules may watch.
PUBLIC_METRICS = (
    "connections",
    "connections_pct",
    "messages_in_rate",
    "messages_out_rate",
    "messages_dropped_rate",
    "auth_failures_rate",
    "rule_engine_resources_down",
    "rule_failures_rate",
)
#: Lifecycle events a rule may watch like a metric, per deployment: ``deployment_failed`` is 1 while the
#: deployment is failed, ``peering_failed`` 1 while any of its peerings is failed; else 0.
EVENT_METRICS = ("deployment_failed", "peering_failed")
#: Conditions of the whole organization (1 while they hold, else 0): one incident per rule, with no deployment.
#: ``payment_failed`` holds while the billing account's last payment failed.
ORGANIZATION_METRICS = ("payment_failed",)
#: Read from the control plane's own records rather than scraped from the brokers, per running deployment:
#: ``certificate_expiry_days``, the days until its TLS server certificate expires (renewal keeps it above
#: ``TLS_RENEW_BEFORE_DAYS``, so a rule at e.g. ``< 14`` fires only when renewal keeps failing).
CERTIFICATE_METRICS = ("certificate_expiry_days",)
RULE_METRICS = PUBLIC_METRICS + EVENT_METRICS + CERTIFICATE_METRICS + ORGANIZATION_METRICS
#: Raw broker counters kept as samples so the next scrape can turn them into per-second rates.
COUNTER_METRICS = {
    "messages_dropped_total": ("messages_dropped", "messages_dropped_rate"),
    "auth_failures_total": ("authentication_failures", "auth_failures_rate"),
    "rule_failures_total": ("rule_failures", "rule_failures_rate"),
}


class MetricSample(models.Model):
    """One value of one metric of one deployment at one scrape. Kept for ``METRICS_RETENTION_DAYS``."""

    organization = models.ForeignKey("projects.Organization", on_delete=models.CASCADE, related_name="+")
    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="+")
    metric = models.CharField(max_length=40)
    value = models.FloatField()
    at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["deployment", "metric", "at"]),
            models.Index(fields=["at"]),
        ]
        constraints = [
            # A rerun of the same scrape instant is a no-op (ignore_conflicts).
            models.UniqueConstraint(fields=["deployment", "metric", "at"], name="one_sample_per_metric_instant"),
        ]

    def __str__(self) -> str:
        return f"{self.deployment_id} {self.metric}={self.value} @ {self.at.isoformat()}"


class ChannelType(models.TextChoices):
    EMAIL = "email", "Email"
    PAGERDUTY = "pagerduty", "PagerDuty"
    WEBHOOK = "webhook", "Webhook"


class AlertChannel(models.Model):
    """Where notifications go. ``config`` holds the public part (recipients, URL); the PagerDuty routing key,
    the webhook secret and the webhook's custom headers are encrypted at rest and never returned."""

    id = PrefixedIdField(prefix="ach")
    organization = models.ForeignKey("projects.Organization", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    type = models.CharField(max_length=16, choices=ChannelType.choices)
    config = models.JSONField(default=dict, blank=True)
    secret = EncryptedTextField(blank=True, help_text="PagerDuty routing key or webhook signing secret")
    headers = EncryptedTextField(blank=True, help_text="webhook custom headers, as JSON")
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    #: When the channel was created or last re-enabled: failures before it do not count towards disabling it.
    enabled_since = models.DateTimeField(default=timezone.now)
    #: Set on channels the platform creates itself (``owners``: the organization's default email channel).
    default_key = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["organization", "created_at"])]
        constraints = [
            models.UniqueConstraint(fields=["organization", "default_key"], condition=~models.Q(default_key=""),
                                    name="one_default_channel_per_key"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.type})"


class Operator(models.TextChoices):
    GT = ">", "greater than"
    GTE = ">=", "at least"
    LT = "<", "less than"
    LTE = "<=", "at most"


class Severity(models.TextChoices):
    CRITICAL = "critical", "Critical"
    WARNING = "warning", "Warning"
    INFO = "info", "Info"


class AlertRule(models.Model):
    """A condition on one metric of a project's deployments (or of one deployment) held for ``duration_s``."""

    id = PrefixedIdField(prefix="arl")
    organization = models.ForeignKey("projects.Organization", on_delete=models.CASCADE, related_name="+")
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, null=True, blank=True,
                                   related_name="+")
    name = models.CharField(max_length=100)
    metric = models.CharField(max_length=40, choices=[(m, m) for m in RULE_METRICS],
                              help_text="a metric, a lifecycle event (deployment_failed, peering_failed), the "
                                        "certificate's days to expiry or an organization condition (payment_failed)")
    operator = models.CharField(max_length=2, choices=Operator.choices)
    threshold = models.DecimalField(max_digits=14, decimal_places=4)
    duration_s = models.PositiveIntegerField(default=300)
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.WARNING)
    channels = models.ManyToManyField(AlertChannel, blank=True, related_name="rules")
    repeat_interval_s = models.PositiveIntegerField(default=3600, help_text="0: notify once per incident")
    enabled = models.BooleanField(default=True)
    #: Set on the rules created with a project (``connections_high``, ``payment_failed``…); editable like any.
    default_key = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["organization", "created_at"]), models.Index(fields=["enabled"])]

    def __str__(self) -> str:
        return f"{self.name}: {self.metric} {self.operator} {self.threshold} for {self.duration_s}s"


class AlertState(models.TextChoices):
    FIRING = "firing", "Firing"
    RESOLVED = "resolved", "Resolved"


class Alert(models.Model):
    """An incident: one rule's condition holding on one deployment, from ``started_at`` to ``resolved_at``.

    Rules on an organization condition (``payment_failed``) open incidents with no deployment.
    """

    id = PrefixedIdField(prefix="alr")
    organization = models.ForeignKey("projects.Organization", on_delete=models.CASCADE, related_name="+")
    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, null=True, blank=True,
                                   related_name="+")
    state = models.CharField(max_length=16, choices=AlertState.choices, default=AlertState.FIRING)
    started_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    value = models.FloatField(help_text="the metric's latest value while firing; the value that cleared it after")
    last_notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["rule", "deployment"], condition=models.Q(state="firing"),
                                    name="one_open_alert_per_rule_deployment"),
            # NULLs are distinct in a unique index: organization-level incidents need their own constraint.
            models.UniqueConstraint(fields=["rule"], condition=models.Q(state="firing", deployment__isnull=True),
                                    name="one_open_organization_alert_per_rule"),
        ]
        indexes = [models.Index(fields=["organization", "-started_at"])]

    def __str__(self) -> str:
        return f"{self.rule_id} on {self.deployment_id or self.organization_id}: {self.state}"


class NotificationKind(models.TextChoices):
    TRIGGER = "trigger", "Trigger"
    RESOLVE = "resolve", "Resolve"
    TEST = "test", "Test"
    NOTICE = "notice", "Notice"  # not about an incident (e.g. a budget threshold): alert is null


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class Notification(models.Model):
    """One delivery to one channel, with its attempts. ``payload`` is fixed at creation so every retry sends
    the same body (and the same ``webhook-id``: receivers de-duplicate on it)."""

    id = PrefixedIdField(prefix="ntf")
    organization = models.ForeignKey("projects.Organization", on_delete=models.CASCADE, related_name="+")
    channel = models.ForeignKey(AlertChannel, on_delete=models.CASCADE, related_name="notifications")
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, null=True, blank=True, related_name="notifications")
    kind = models.CharField(max_length=16, choices=NotificationKind.choices)
    status = models.CharField(max_length=16, choices=NotificationStatus.choices, default=NotificationStatus.PENDING)
    payload = models.JSONField(default=dict)
    attempts = models.PositiveIntegerField(default=0)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    #: Set while a sender holds the notification for an attempt (``alerts.services.sending``): no other sender
    #: sends it until then. Internal: not in the API.
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["organization", "-created_at"]),
                   models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.kind} → {self.channel_id}: {self.status}"
