"""Serializer bases shared by every app's API."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any, ClassVar

from django.db import models
from drf_spectacular.utils import extend_schema_field
from rest_framework import mixins, serializers
from rest_framework.fields import SkipField
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

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


# --- output -----------------------------------------------------------------------------------------
_DIRECT_FIELDS = (serializers.CharField, serializers.ChoiceField, serializers.BooleanField,
                  serializers.IntegerField)
_DIRECT_TYPES = (str, bool, int)


def format_datetime(value: datetime.datetime | None) -> str | None:
    """What DRF's ``DateTimeField`` renders with our ``DATETIME_FORMAT`` (``%Y-%m-%dT%H:%M:%S.%fZ``), without its
    per-value setting and time zone lookups (the API runs in UTC: ``TIME_ZONE = "UTC"``, and no view activates
    another zone), and through ``isoformat``, which is several times faster than ``strftime``."""
    if value is None:
        return None
    if value.tzinfo is datetime.UTC and value.year >= 1000:
        # What the database hands back (connections run in UTC): "+00:00" becomes "Z", no arithmetic.
        return value.isoformat(timespec="microseconds")[:-6] + "Z"
    offset = value.utcoffset()
    if offset:  # None: naive (SQLite without time zone support), which DRF reads as UTC too
        value = value - offset
    if value.year < 1000:  # strftime does not pad the year to four digits; isoformat does
        return value.replace(tzinfo=None).strftime(_DATETIME_FORMAT)
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


_DATETIME_FORMAT = api_settings.DATETIME_FORMAT


class OutputSerializer(serializers.ModelSerializer):
    """An output-only model serializer that renders a row with a plan made once per class instead of DRF's
    per-field dispatch (and without building ``self.fields``, which for a ModelSerializer introspects the model
    on every request). The fields, and so the OpenAPI schema, are exactly as declared; each field renders as DRF
    would render it: plain attributes of str/bool/int values as they are, datetimes through
    :func:`format_datetime`, ``SerializerMethodField`` through its method, anything else (nested serializers,
    dotted sources, other field types) through DRF itself. ``tests/test_output_serializers.py`` compares the two
    renderings for every subclass.

    ``fast_fields`` maps a field name to a function of the instance for a field DRF would render slowly (a nested
    serializer of a JSON column): it must return what DRF returns."""

    fast_fields: ClassVar[dict[str, Callable[[Any], Any]]] = {}
    #: For lists read as rows (:class:`ListRowsMixin`): field name → (the columns it needs, a function of the row
    #: dict returning what DRF renders from the instance), for the fields that are not one column each.
    row_fields: ClassVar[dict[str, tuple[tuple[str, ...], Callable[[dict[str, Any]], Any]]]] = {}
    _plans: ClassVar[dict[type, list[tuple[str, str, Any]]]] = {}
    _row_columns: ClassVar[dict[type, tuple[str, ...] | None]] = {}
    _row_renderers: ClassVar[dict[type, Callable[[dict[str, Any], OutputSerializer], dict[str, Any]]]] = {}

    @classmethod
    def row_columns(cls) -> tuple[str, ...] | None:
        """The columns a list reads with ``.values()`` to render with :meth:`render_rows`; None when a field
        needs the instance."""
        if cls in OutputSerializer._row_columns:
            return OutputSerializer._row_columns[cls]
        attnames = {field.attname for field in cls.Meta.model._meta.concrete_fields}  # type: ignore[attr-defined]
        columns: list[str] | None = []
        for name, kind, how in cls()._plan():
            if name in cls.row_fields:
                columns.extend(cls.row_fields[name][0])  # type: ignore[union-attr]
            elif kind in ("direct", "datetime") and how in attnames:
                columns.append(how)  # type: ignore[union-attr]
            else:
                columns = None
                break
        result = tuple(dict.fromkeys(columns)) if columns is not None else None
        OutputSerializer._row_columns[cls] = result
        return result

    def render_rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """What :meth:`to_representation` renders for each instance, from its :meth:`row_columns`."""
        render = OutputSerializer._row_renderers.get(type(self))
        if render is None:
            render = OutputSerializer._row_renderers[type(self)] = self._row_renderer()
        return [render(row, self) for row in rows]

    def _row_renderer(self) -> Callable[[dict[str, Any], OutputSerializer], dict[str, Any]]:
        """One function per class that renders a row as a single dict display, made from the plan the way
        ``dataclasses`` makes ``__init__``: a list of 50 rows runs it 50 times, where a loop over the plan per
        row paid a branch and a lookup per field (about a third of the time of rendering a list)."""
        namespace: dict[str, Any] = {"_format_datetime": format_datetime, "_direct_types": _DIRECT_TYPES}
        items = []
        for index, (name, kind, how) in enumerate(self._plan()):
            if name in self.row_fields:
                namespace[f"_row_field_{index}"] = self.row_fields[name][1]
                value = f"_row_field_{index}(row)"
            elif kind == "direct":
                # The field's own rendering only for a type it does not hand back unchanged.
                value = (f"(v if (v := row[{how!r}]) is None or type(v) in _direct_types"
                         f" else serializer.fields[{name!r}].to_representation(v))")
            else:  # datetime
                value = f"_format_datetime(row[{how!r}])"
            items.append(f"{name!r}: {value}")
        source = "def render(row, serializer):\n    return {" + ", ".join(items) + "}\n"
        exec(compile(source, f"<row renderer of {type(self).__name__}>", "exec"), namespace)  # noqa: S102
        return namespace["render"]

    def _plan(self) -> list[tuple[str, str, Any]]:
        plan = OutputSerializer._plans.get(type(self))
        if plan is None:
            plan = []
            for name, field in self.fields.items():
                if field.write_only:
                    continue
                if name in self.fast_fields:
                    plan.append((name, "call", self.fast_fields[name]))
                elif isinstance(field, serializers.SerializerMethodField):
                    plan.append((name, "method", field.method_name))
                elif field.source is None or field.source == "*" or "." in field.source:
                    plan.append((name, "drf", None))
                elif type(field) is serializers.DateTimeField and getattr(
                        field, "format", _DATETIME_FORMAT) == _DATETIME_FORMAT and not hasattr(field, "timezone"):
                    plan.append((name, "datetime", field.source))
                elif isinstance(field, _DIRECT_FIELDS) and type(field).to_representation in _DIRECT_METHODS:
                    plan.append((name, "direct", field.source))
                else:
                    plan.append((name, "drf", None))
            OutputSerializer._plans[type(self)] = plan
        return plan

    def to_representation(self, instance: Any) -> dict[str, Any]:
        if not isinstance(instance, models.Model):
            return super().to_representation(instance)
        out: dict[str, Any] = {}
        for name, kind, how in self._plan():
            if kind == "direct":
                value = getattr(instance, how)
                if value is not None and type(value) not in _DIRECT_TYPES:
                    value = self.fields[name].to_representation(value)
            elif kind == "datetime":
                value = format_datetime(getattr(instance, how))
            elif kind == "method":
                value = getattr(self, how)(instance)
            elif kind == "call":
                value = how(instance)
            else:
                field = self.fields[name]
                try:
                    attribute = field.get_attribute(instance)
                except SkipField:
                    continue
                value = None if attribute is None else field.to_representation(attribute)
            out[name] = value
        return out


# Fields whose to_representation gives a str, bool or int value back unchanged.
_DIRECT_METHODS = {serializers.CharField.to_representation, serializers.ChoiceField.to_representation,
                   serializers.BooleanField.to_representation, serializers.IntegerField.to_representation}


class ListRowsMixin(mixins.ListModelMixin):
    """A list whose :class:`OutputSerializer` can render from columns reads them with ``.values()``: no model
    instance per row (the same filters, scoping and cursor pagination; the pagination's ordering columns come
    along for its cursor). Any other serializer lists as DRF does."""

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer_class = self.get_serializer_class()  # type: ignore[attr-defined]
        columns = serializer_class.row_columns() if issubclass(serializer_class, OutputSerializer) else None
        paginator = self.paginator  # type: ignore[attr-defined]
        ordering = getattr(paginator, "ordering", None)
        if columns is None or not ordering:
            return super().list(request, *args, **kwargs)
        ordering = (ordering,) if isinstance(ordering, str) else ordering
        queryset = self.filter_queryset(self.get_queryset())  # type: ignore[attr-defined]
        rows = queryset.values(*dict.fromkeys([*columns, *(name.lstrip("-") for name in ordering)]))
        page = self.paginate_queryset(rows)  # type: ignore[attr-defined]
        serializer = serializer_class(context=self.get_serializer_context())  # type: ignore[attr-defined]
        return self.get_paginated_response(serializer.render_rows(page))  # type: ignore[attr-defined]
