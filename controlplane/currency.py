"""How money reads on every page: one format, like ``Intl.NumberFormat(locale, {style: "currency"})``.

The symbol comes before the amount (``$1,340.01``; ``CN¥`` for yuan, as browsers print it beside dollars),
grouping and decimal marks follow the active Django locale, a minus sign leads (``-$12.00``). Amounts keep
the currency's two decimals; a rate (a price per hour) shows up to four, never fewer than two, because
catalog prices such as 0.0134 per hour would otherwise round to a misleading cent.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django.utils import formats

SYMBOLS = {"USD": "$", "CNY": "CN¥", "EUR": "€"}
MINOR_DIGITS = 2
RATE_MAX_DIGITS = 4


def currency_symbol(currency: str) -> str:
    return SYMBOLS.get(currency, f"{currency} ")


def format_money(amount: Decimal, currency: str, *, max_digits: int = MINOR_DIGITS) -> str:
    """``amount`` with its currency's symbol, grouped, with two decimals (up to ``max_digits`` if they matter)."""
    if not isinstance(amount, Decimal):
        raise TypeError("money is Decimal, never float")
    digits = MINOR_DIGITS
    # Like maximumFractionDigits: extra decimals only where they are not zero.
    while digits < max_digits and amount != amount.quantize(Decimal(1).scaleb(-digits)):
        digits += 1
    # Django's number_format cuts extra decimals off; money rounds half-up, as billing.money does.
    rounded = abs(amount).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    number = formats.number_format(rounded, decimal_pos=digits, use_l10n=True, force_grouping=True)
    return f"{'-' if amount < 0 else ''}{currency_symbol(currency)}{number}"


def format_rate(amount: Decimal, currency: str) -> str:
    """A price per unit of time: as :func:`format_money`, with up to four decimals."""
    return format_money(amount, currency, max_digits=RATE_MAX_DIGITS)


def format_percent(value: Decimal) -> str:
    """``15.0`` → ``15%``, ``12.5`` → ``12.5%``: no trailing zero after the point."""
    if value == value.to_integral_value():
        value = value.quantize(Decimal(1))
    else:
        value = value.normalize()  # 12.50 → 12.5 (no exponent: it has decimals)
    text = formats.number_format(value, use_l10n=True)
    return f"{text}%"
