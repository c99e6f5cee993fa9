"""The console's one money format (``controlplane.currency``), as ``Intl.NumberFormat("en-US", currency)`` prints it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import translation

from controlplane.currency import format_money, format_percent, format_rate


@pytest.mark.parametrize(("amount", "currency", "text"), [
    ("1340.01", "USD", "$1,340.01"),
    ("1340", "USD", "$1,340.00"),
    ("-12.5", "USD", "-$12.50"),
    ("0.005", "USD", "$0.01"),  # half-up, as billing rounds; never cut off
    ("9382.00", "CNY", "CN¥9,382.00"),
    ("1", "GBP", "GBP 1.00"),
])
def test_amounts_have_the_symbol_grouping_and_two_decimals(amount, currency, text):
    assert format_money(Decimal(amount), currency) == text


def test_a_rate_keeps_the_decimals_that_matter_up_to_four():
    assert format_rate(Decimal("0.0134"), "USD") == "$0.0134"
    assert format_rate(Decimal("0.1800"), "USD") == "$0.18"
    assert format_rate(Decimal("0.01"), "USD") == "$0.01"


def test_percentages_drop_a_trailing_zero():
    assert [format_percent(Decimal(v)) for v in ("15.0", "19.00", "12.5", "0")] == ["15%", "19%", "12.5%", "0%"]


def test_floats_are_refused():
    with pytest.raises(TypeError):
        format_money(1.5, "USD")  # type: ignore[arg-type]


def test_the_marks_follow_the_active_locale():
    with translation.override("de"):
        assert format_money(Decimal("1340.01"), "EUR") == "€1.340,01"
