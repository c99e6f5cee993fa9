from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing import money

amounts = st.decimals(min_value=Decimal("0"), max_value=Decimal("1000000"), places=6, allow_nan=False,
                      allow_infinity=False)
rates = st.sampled_from([Decimal(r) for r in ("0", "6", "16", "19", "20", "21", "25.5", "27")])


def test_quantize_rounds_half_up():
    assert money.quantize(Decimal("0.005"), "USD") == Decimal("0.01")
    assert money.quantize(Decimal("0.004999"), "USD") == Decimal("0.00")
    assert money.quantize(Decimal("2.675"), "CNY") == Decimal("2.68")


def test_quantize_refuses_float():
    with pytest.raises(TypeError):
        money.quantize(0.1, "USD")  # type: ignore[arg-type]


@given(lines=st.lists(amounts, min_size=1, max_size=20), rate=rates, currency=st.sampled_from(["USD", "CNY"]))
def test_invoice_arithmetic(lines, rate, currency):
    rounded = [money.quantize(line, currency) for line in lines]
    assert all(r.as_tuple().exponent == -2 for r in rounded)
    assert all(abs(r - line) <= Decimal("0.005") for r, line in zip(rounded, lines, strict=True))
    subtotal = sum(rounded, Decimal("0.00"))
    vat = money.vat_amount(subtotal, rate, currency)
    assert vat >= 0
    assert vat.as_tuple().exponent == -2
    total = subtotal + vat
    assert total == subtotal + vat and total.as_tuple().exponent == -2


@given(country=st.sampled_from(sorted(money.eu_member_states() - {"DE"})), rate=rates,
       subtotal=amounts)
def test_reverse_charge_is_zero(country, rate, subtotal):
    treatment = money.vat_treatment(site="global", customer_country=country, vat_number_valid=True,
                                    tax_exempt=False, on=date(2026, 11, 1))
    assert treatment.reverse_charge and treatment.rate == 0
    assert money.vat_amount(money.quantize(subtotal, "USD"), treatment.rate, "USD") == 0
    assert "Reverse charge" in treatment.note


ON = date(2026, 11, 30)


@pytest.mark.parametrize(("site", "country", "valid", "exempt", "rate", "reverse"), [
    ("global", "DE", False, False, "19", False),  # domestic
    ("global", "DE", True, False, "19", False),  # domestic business still pays German VAT
    ("global", "FR", True, False, "0", True),  # EU B2B, valid number: reverse charge
    ("global", "FR", False, False, "20", False),  # EU number unchecked/invalid: consumer treatment
    ("global", "GR", False, False, "24", False),  # EU consumer in Greece
    ("global", "FI", False, False, "25.5", False),  # dated rate in force
    ("global", "US", False, False, "0", False),  # outside the EU
    ("global", "GB", True, False, "0", False),  # UK / Northern Ireland (XI): services outside the EU
    ("global", "DE", False, True, "0", False),  # exempt (operators)
    ("cn", "CN", False, False, "6", False),  # cn site, domestic
    ("cn", "DE", False, False, "0", False),  # cn site, foreign customer
])
def test_vat_table(site, country, valid, exempt, rate, reverse):
    treatment = money.vat_treatment(site=site, customer_country=country, vat_number_valid=valid, tax_exempt=exempt,
                                    on=ON)
    assert treatment.rate == Decimal(rate)
    assert treatment.reverse_charge is reverse


def test_rates_are_dated():
    assert money.standard_rate("DE", date(2020, 8, 1)) == Decimal("16")
    assert money.standard_rate("DE", date(2021, 1, 1)) == Decimal("19")
    assert money.standard_rate("FI", date(2024, 8, 31)) == Decimal("24")
    assert money.standard_rate("FI", date(2024, 9, 1)) == Decimal("25.5")
