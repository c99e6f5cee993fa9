"""Writes of the alerts app: channels, rules, incidents, notification deliveries, metric retention.

Keyword-only, typed, atomic; every customer-visible write is audited. Deliveries are recorded first and
sent by Celery tasks enqueued on commit.

One module per concern: ``channels``, ``notifications`` (the delivery engine and ``alerts_notify``, its entry
point for incidents), ``rules``, ``defaults`` (what every new project starts with), ``failing_channels``,
``retention``, and ``validation`` (the field error they share). Inside ``alerts`` import those modules
directly; this package re-exports their public names so callers elsewhere keep ``from alerts.services import
...`` during the move.
"""

from alerts.services.channels import (
    CHANNEL_PERM,
    HEADER_NAME_RE,
    MAX_RECIPIENTS,
    RESERVED_HEADERS,
    ROUTING_KEY_RE,
    channel_can_manage,
    channel_create,
    channel_delete,
    channel_require_manager,
    channel_test,
    channel_update,
    new_webhook_secret,
)
from alerts.services.defaults import (
    DEFAULT_RULES,
    ORGANIZATION_DEFAULT_RULES,
    OWNERS_CHANNEL_KEY,
    default_rules_backfill,
    organization_rules_rehome,
    owners_channel_ensure,
    project_default_rules_create,
)
from alerts.services.failing_channels import channel_disabled_notify, failing_channels_disable
from alerts.services.notifications import (
    alerts_notify,
    notification_attempt,
    notification_attempt_record,
    notifications_enqueue,
    notifications_redrive,
)
from alerts.services.retention import metric_samples_purge
from alerts.services.rules import RULE_FIELDS, WRITE_PERM, rule_create, rule_delete, rule_update

__all__ = [
    "CHANNEL_PERM",
    "DEFAULT_RULES",
    "HEADER_NAME_RE",
    "MAX_RECIPIENTS",
    "ORGANIZATION_DEFAULT_RULES",
    "OWNERS_CHANNEL_KEY",
    "RESERVED_HEADERS",
    "ROUTING_KEY_RE",
    "RULE_FIELDS",
    "WRITE_PERM",
    "alerts_notify",
    "channel_can_manage",
    "channel_create",
    "channel_delete",
    "channel_disabled_notify",
    "channel_require_manager",
    "channel_test",
    "channel_update",
    "default_rules_backfill",
    "failing_channels_disable",
    "metric_samples_purge",
    "new_webhook_secret",
    "notification_attempt",
    "notification_attempt_record",
    "notifications_enqueue",
    "notifications_redrive",
    "organization_rules_rehome",
    "owners_channel_ensure",
    "project_default_rules_create",
    "rule_create",
    "rule_delete",
    "rule_update",
]
