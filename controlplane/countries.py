"""ISO 3166-1 alpha-2 countries: the one list every place that takes a country checks against.

The list is ``data/iso3166-1.json`` (its ``source`` says where it came from); neither Django nor python-stdnum ships
one. A two-letter regex alone accepted "XX", and a two-character text field cut "Germany" to "GE" (Georgia), so
both the console's picker and every server-side check read this list.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from django import forms

from controlplane import errors

_DATA = Path(__file__).resolve().parent / "data" / "iso3166-1.json"


@cache
def country_names() -> dict[str, str]:
    """Code to English short name, e.g. ``{"DE": "Germany", ...}``."""
    return dict(json.loads(_DATA.read_text(encoding="utf-8"))["countries"])


def country_choices() -> list[tuple[str, str]]:
    """``(code, "Name (CODE)")`` sorted by name, for a <select>."""
    return sorted(((code, f"{name} ({code})") for code, name in country_names().items()), key=lambda c: c[1])


def is_country_code(value: str) -> bool:
    return value in country_names()


def country_error(value: str) -> str:
    """Why ``value`` is not a country code, naming the code when ``value`` is a country's name."""
    wanted = value.strip().casefold()
    for code, name in country_names().items():
        if name.casefold() == wanted:
            return f"Use the two-letter code {code} for {name}."
    return f"{value.strip()[:40]!r} is not an ISO 3166-1 alpha-2 country code (such as DE or US)."


def country_code_clean(value: str, *, field: str = "country") -> str:
    """The upper-cased code; raises ValidationFailed with a field error for anything else (never truncates)."""
    code = value.strip().upper()
    if not is_country_code(code):
        raise errors.ValidationFailed("Invalid country.", errors={field: [country_error(value)]})
    return code


class CountryField(forms.ChoiceField):
    """The console's country picker: a <select> of "Name (CODE)" over the same list the services check."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("label", "Country")
        blank = "No country" if kwargs.get("required") is False else "Choose a country…"
        super().__init__(choices=[("", blank), *country_choices()], **kwargs)
        self.widget.attrs.setdefault("autocomplete", "country")

    def to_python(self, value: Any) -> str:
        return super().to_python(value).strip().upper()

    def validate(self, value: str) -> None:
        try:
            super().validate(value)
        except forms.ValidationError:
            if value and not is_country_code(value):
                raise forms.ValidationError(country_error(value), code="invalid_choice") from None
            raise
