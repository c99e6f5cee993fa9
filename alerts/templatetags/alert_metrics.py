"""``{{ rule.metric|metric_name }}``: a rule metric's name and unit in words (see ``alerts.console.metric_names``)."""

from __future__ import annotations

from decimal import Decimal

from django import template

from alerts.console.metric_names import MetricName
from alerts.console.metric_names import metric_name as name_of

register = template.Library()


@register.filter
def metric_name(metric: str) -> MetricName:
    return name_of(metric)


@register.filter
def with_threshold(name: MetricName, value: object) -> str:
    """``85 % of the spec's limit``: a threshold or reading with the metric's unit, without trailing zeros."""
    number = Decimal(str(value)).quantize(Decimal("0.0001")).normalize()
    return name.with_unit(f"{number:f}")
