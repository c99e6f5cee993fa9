"""``{{ amount|money:currency }}``, ``{{ price|money_rate:currency }}``, ``{{ pct|percent }}``: the one money
format of the console (``controlplane.currency``)."""

from __future__ import annotations

from decimal import Decimal

from django import template

from controlplane import currency as currency_format

register = template.Library()


@register.filter
def money(amount: Decimal | None, currency: str) -> str:
    return "" if amount is None else currency_format.format_money(amount, currency)


@register.filter
def money_rate(amount: Decimal | None, currency: str) -> str:
    return "" if amount is None else currency_format.format_rate(amount, currency)


@register.filter
def percent(value: Decimal | None) -> str:
    return "" if value is None else currency_format.format_percent(value)
