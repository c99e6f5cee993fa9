"""The API's one request body parser."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import IO, Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

#: No request body of this API nests anywhere near this deep; anything deeper is refused before a serializer,
#: an error flattener or the database recurses through it.
MAX_JSON_DEPTH = 32


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing bodies nested too deeply as a 400 (Python's decoder raises RecursionError
    past about a thousand levels, which a 2 KB body reaches, and which escaped as a 500)."""

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels.") from exc
        if _depth_exceeds(data, MAX_JSON_DEPTH):
            raise ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels.")
        return data


def _depth_exceeds(data: Any, limit: int) -> bool:
    """Iterative, so the check itself cannot hit the recursion limit."""
    pending = [(data, 1)]
    children: Iterable[Any]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False
