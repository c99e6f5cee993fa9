"""Money and VAT: ``Decimal`` only, rounded half-up to the currency's minor unit; rates from a dated data file.

VAT rules (DESIGN.md, Billing): domestic customers pay the seller country's rate; EU business customers
with a *valid* (VIES-confirmed) VAT number in another member state pay 0% with a reverse-charge note; EU
consumers pay their own country's rate; customers outside the EU pay none. A Northern Ireland (``XI``)
number marks a UK business: the XI scheme covers goods only, so for our services it is outside the EU.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from pathlib import Path

VAT_TABLE_PATH = Path(__file__).resolve().parent / "data" / "vat_rates.json"
REVERSE_CHARGE_NOTE = "Reverse charge: VAT to be accounted for by the recipient (Article 196, Directive 2006/112/EC)."
ZERO = Decimal("0")


@cache
def vat_table() -> dict:
    with VAT_TABLE_PATH.open(encoding="utf-8") as handle:
        return json.load(handle)


def minor_unit(currency: str) -> int:
    return int(vat_table()["minor_units"].get(currency, 2))


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Rounds half-up to the currency's minor unit (``USD``/``CNY``: cents)."""
    if not isinstance(amount, Decimal):
        raise TypeError("money is Decimal, never float")
    return amount.quantize(Decimal(1).scaleb(-minor_unit(currency)), rounding=ROUND_HALF_UP)


def usage_amount(*, seconds: int, hourly_price: Decimal, currency: str) -> Decimal:
    """The charge for ``seconds`` at an hourly price: one rounding per invoice line (deployment and spec)."""
    return quantize(Decimal(seconds) * hourly_price / Decimal(3600), currency)


def eu_member_states() -> frozenset[str]:
    return frozenset(vat_table()["eu_member_states"])


def seller_country(site: str) -> str:
    return vat_table()["sellers"][site]


def vat_prefixes(country: str) -> list[str]:
    """The prefixes a VAT number of ``country`` may carry (Greece: EL; the UK: GB or XI for Northern Ireland)."""
    return vat_table()["vat_prefixes"].get(country, [country])


def standard_rate(country: str, on: date) -> Decimal:
    """The standard rate (percent) in force in ``country`` on ``on``; 0 for a country not in the table."""
    rate = ZERO
    for entry in sorted(vat_table()["rates"].get(country, []), key=lambda e: e["valid_from"]):
        if date.fromisoformat(entry["valid_from"]) <= on:
            rate = Decimal(entry["rate"])
    return rate


@dataclass(frozen=True)
class VatTreatment:
    rate: Decimal  # percent
    note: str
    reverse_charge: bool = False


def vat_treatment(*, site: str, customer_country: str, vat_number_valid: bool, tax_exempt: bool,
                  on: date) -> VatTreatment:
    seller = seller_country(site)
    eu = eu_member_states()
    if tax_exempt:
        return VatTreatment(ZERO, "Exempt from VAT.")
    if customer_country == seller:
        return VatTreatment(standard_rate(seller, on), "")
    if seller in eu and customer_country in eu:
        if vat_number_valid:
            return VatTreatment(ZERO, REVERSE_CHARGE_NOTE, reverse_charge=True)
        return VatTreatment(standard_rate(customer_country, on), "")
    return VatTreatment(ZERO, "Outside the scope of VAT: customer established outside the seller's VAT area.")


def vat_amount(subtotal: Decimal, rate: Decimal, currency: str) -> Decimal:
    return quantize(subtotal * rate / Decimal(100), currency)
