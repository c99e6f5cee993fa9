"""Serializer bases shared by every app's API."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from controlplane import countries, errors


class InputSerializer(serializers.Serializer):
    """Checks the shape of a request body. Unknown fields are refused, so nothing is silently ignored
    (and fields such as ``organization`` or ``status`` can never be slipped in)."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        initial = getattr(self, "initial_data", None)
        if isinstance(initial, dict):
            unknown = sorted(set(initial) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return attrs


class PrefixedIdListField(serializers.ListField):
    def __init__(self, *, prefix: str, **kwargs: Any) -> None:
        kwargs.setdefault("child", serializers.RegexField(rf"^{prefix}_[a-z0-9]{{1,28}}$", max_length=32))
        kwargs.setdefault("max_length", 200)
        super().__init__(**kwargs)


# The schema lists the codes so clients (and schemathesis) send real ones; lower case is accepted too.
@extend_schema_field({"type": "string", "enum": sorted(countries.country_names()), "example": "DE"})
class CountryCodeField(serializers.CharField):
    """An ISO 3166-1 alpha-2 code, any case in, upper case out. A name ("Germany") or an unassigned code ("XX")
    is a field error naming the right code where it can, never truncated to two letters."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 100)
        kwargs.setdefault("help_text", "ISO 3166-1 alpha-2 country code, e.g. DE or US.")
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if not value:
            return value
        try:
            return countries.country_code_clean(value)
        except errors.ValidationFailed as exc:
            raise serializers.ValidationError(exc.errors["country"]) from exc
