"""Cursor pagination with ``?limit=``: ``{"results": [...], "next": url | null}``."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from controlplane.errors import ValidationFailed

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class CursorLimitPagination(CursorPagination):
    page_size = DEFAULT_LIMIT
    page_size_query_param = "limit"
    max_page_size = MAX_LIMIT
    # Newest first; the id breaks ties between rows created in the same microsecond.
    ordering = ("-created_at", "-id")
    invalid_cursor_message = "The cursor is invalid or has expired; start again without it."

    def get_page_size(self, request) -> int:
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

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except Exception as exc:  # DRF raises NotFound for a bad cursor; a bad cursor is bad input
            message = self.invalid_cursor_message
            raise ValidationFailed(message, errors={"cursor": [message]}) from exc

    def get_paginated_response(self, data) -> Response:
        return Response({"results": data, "next": self.get_next_link()})

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return {
            "type": "object",
            "required": ["results", "next"],
            "properties": {
                "results": schema,
                "next": {"type": "string", "nullable": True, "format": "uri"},
            },
        }

    def get_schema_operation_parameters(self, view) -> list[dict]:
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
