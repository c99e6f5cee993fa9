"""What the console calls each rule metric, and its unit. The API keeps the identifiers (``connections_pct``);
people choosing a threshold need to know it is a percentage of the spec, a rate per second or a count of days."""

from __future__ import annotations

from dataclasses import dataclass

from alerts.models import RULE_METRICS


@dataclass(frozen=True)
class MetricName:
    label: str
    #: Written after a value ("85 % of the spec's connections"); empty for conditions, which are 1 or 0.
    unit: str

    @property
    def is_condition(self) -> bool:
        return not self.unit

    @property
    def choice_label(self) -> str:
        return f"{self.label} ({self.unit or '1 while it holds, else 0'})"

    def with_unit(self, value: object) -> str:
        return f"{value} {self.unit}" if self.unit else str(value)


METRIC_NAMES: dict[str, MetricName] = {
    "connections": MetricName("Connections", "connections"),
    "connections_pct": MetricName("Connections used", "% of the spec's limit"),
    "messages_in_rate": MetricName("Messages in", "messages/s"),
    "messages_out_rate": MetricName("Messages out", "messages/s"),
    "messages_dropped_rate": MetricName("Messages dropped", "messages/s"),
    "auth_failures_rate": MetricName("Authentication failures", "failures/s"),
    "rule_engine_resources_down": MetricName("A rule engine resource is down", ""),
    "rule_failures_rate": MetricName("Rule engine failures", "failures/s"),
    "deployment_failed": MetricName("Deployment failed", ""),
    "peering_failed": MetricName("A VPC peering failed", ""),
    "certificate_expiry_days": MetricName("TLS certificate expires in", "days"),
    "payment_failed": MetricName("Last payment failed", ""),
}


def metric_name(metric: str) -> MetricName:
    """The metric's name in words; an unknown identifier (a metric added to the API first) is shown as it is."""
    return METRIC_NAMES.get(metric) or MetricName(metric, "")


def metric_choices() -> list[tuple[str, str]]:
    return [(metric, metric_name(metric).choice_label) for metric in RULE_METRICS]
