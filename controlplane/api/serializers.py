"""Serializer bases shared by every app's API."""

from __future__ import annotations

from rest_framework import serializers


class InputSerializer(serializers.Serializer):
    """Checks the shape of a request body. Unknown fields are refused, so nothing is silently ignored
    (and fields such as ``organization`` or ``status`` can never be slipped in)."""

    def validate(self, attrs: dict) -> dict:
        initial = getattr(self, "initial_data", None)
        if isinstance(initial, dict):
            unknown = sorted(set(initial) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return attrs


class PrefixedIdListField(serializers.ListField):
    def __init__(self, *, prefix: str, **kwargs) -> None:
        kwargs.setdefault("child", serializers.RegexField(rf"^{prefix}_[a-z0-9]{{1,28}}$", max_length=32))
        kwargs.setdefault("max_length", 200)
        super().__init__(**kwargs)
