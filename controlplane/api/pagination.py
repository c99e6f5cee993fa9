"""Cursor pagination with ``?limit=``: ``{"results": [...], "next": url | null}``."""

from __future__ import annotations

from base64 import b64decode
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib import parse

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from controlplane.errors import ValidationFailed

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from rest_framework.pagination import Cursor
    from rest_framework.request import Request
    from rest_framework.views import APIView

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class CursorLimitPagination(CursorPagination):
    page_size = DEFAULT_LIMIT
    page_size_query_param = "limit"
    max_page_size = MAX_LIMIT
    # Newest first; the id breaks ties between rows created in the same microsecond.
    ordering = ("-created_at", "-id")
    invalid_cursor_message = "The cursor is invalid or has expired; start again without it."

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None or raw == "":
            return self.page_size
        try:
            limit = int(raw)
        except ValueError:
            raise ValidationFailed("limit must be an integer.", errors={"limit": ["Must be an integer."]}) from None
        if not 1 <= limit <= MAX_LIMIT:
            raise ValidationFailed(
                f"limit must be between 1 and {MAX_LIMIT}.", errors={"limit": [f"Must be between 1 and {MAX_LIMIT}."]}
            )
        return limit

    def _invalid_cursor(self) -> ValidationFailed:
        message = self.invalid_cursor_message
        return ValidationFailed(message, errors={"cursor": [message]})

    def decode_cursor(self, request: Request) -> Cursor | None:
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is not None:
            # DRF's decoder skips characters that are not base64 and reads an empty result as "the first
            # page", so garbage would silently restart the walk; only accept what encode_cursor makes.
            try:
                tokens = parse.parse_qs(b64decode(encoded.encode("ascii"), validate=True).decode("ascii"),
                                        keep_blank_values=True, strict_parsing=True)
            except (ValueError, UnicodeError) as exc:
                raise self._invalid_cursor() from exc
            if not tokens or not set(tokens) <= {"o", "r", "p"}:
                raise self._invalid_cursor()
        try:
            return super().decode_cursor(request)
        except Exception as exc:  # DRF raises NotFound for a bad cursor; a bad cursor is bad input
            raise self._invalid_cursor() from exc

    def paginate_queryset(
        self, queryset: QuerySet[Any, Any] | Sequence[Any], request: Request, view: APIView | None = None
    ) -> list[Any] | None:
        try:
            return super().paginate_queryset(queryset, request, view)
        except (DjangoValidationError, DataError, ValueError, TypeError, OverflowError) as exc:
            # A well-formed cursor whose position does not fit the ordering field (a forged "p=").
            if request.query_params.get(self.cursor_query_param) is None:
                raise
            raise self._invalid_cursor() from exc

    def get_paginated_response(self, data: Any) -> Response:
        return Response({"results": data, "next": self.get_next_link()})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["results", "next"],
            "properties": {
                "results": schema,
                "next": {"type": "string", "nullable": True, "format": "uri"},
            },
        }

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        return [
            {
                "name": "cursor",
                "required": False,
                "in": "query",
                "description": "Opaque cursor from a previous page's `next` link.",
                "schema": {"type": "string"},
            },
            {
                "name": "limit",
                "required": False,
                "in": "query",
                "description": f"Items per page (default {DEFAULT_LIMIT}, at most {MAX_LIMIT}).",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
            },
        ]
