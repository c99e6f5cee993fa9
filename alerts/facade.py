"""The public door of ``alerts``: what the apps above it (``billing``) may call. Everything else in ``alerts`` is
its own business; an app above imports this module (and ``alerts.models`` for foreign keys, ``alerts.hooks`` to
register receivers), never ``alerts.services``, ``alerts.selectors`` or a private name.
"""

from __future__ import annotations

from alerts.notices import organization_notice_email, organization_notice_send
from alerts.selectors import DeliveryStats, channel_list, delivery_stats, evaluation_lag_seconds

# --- channels ---------------------------------------------------------------------------------------------------
# ``channel_list(*, principal)``: the alert channels the principal's organization has (a queryset, for pickers
# and for checking ids a request names, e.g. a budget's channels).

# --- notices ----------------------------------------------------------------------------------------------------
# Organization-level messages that are not about an incident (a budget threshold crossed), delivered by the alert
# machinery: ``organization_notice_send(*, organization, channels, event_type, title, summary, details, severity,
# dedup_key, facts=None, now=None)`` records one notice per enabled channel and delivers them after commit;
# ``organization_notice_email(*, organization, recipients, …)`` emails people directly when there is no channel.

# --- the fleet, for the ops overview (system reads) ---------------------------------------------------------------
# ``evaluation_lag_seconds(*, now)``: seconds since the rule evaluation last finished (None: never recorded);
# ``delivery_stats(*, since)``: notification deliveries since then by status, with their ``failure_rate``.

__all__ = [
    "DeliveryStats",
    "channel_list",
    "delivery_stats",
    "evaluation_lag_seconds",
    "organization_notice_email",
    "organization_notice_send",
]
