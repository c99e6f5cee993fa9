"""Kubernetes `Status` errors, shaped like the real API server's so the official client raises the same
`ApiException` (status, reason, JSON body) a production cluster would."""

from __future__ import annotations

from typing import Any

from .resources import ResourceType

REASONS = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class ApiError(Exception):
    """An error the API server answers with a `Status` object."""

    def __init__(
        self, code: int, message: str, *, reason: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def _details(rt: ResourceType, name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "group": rt.group, "kind": rt.plural, **extra}


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, f'{rt.qualified} "{name}" not found', details=_details(rt, name))


def already_exists(rt: ResourceType, name: str) -> ApiError:
    return ApiError(409, f'{rt.qualified} "{name}" already exists', reason="AlreadyExists",
                    details=_details(rt, name))


def conflict(rt: ResourceType, name: str, why: str, causes: list[dict[str, str]] | None = None) -> ApiError:
    return ApiError(409, f'Operation cannot be fulfilled on {rt.qualified} "{name}": {why}',
                    details=_details(rt, name, causes=causes or []))


def invalid(rt: ResourceType, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """`causes` are (field, reason, message) triples, e.g. ("spec.selector", "FieldValueRequired", "Required value")."""
    summary = ", ".join(f"{field}: {message}" for field, _, message in causes)
    kind = f"{rt.kind}.{rt.group}" if rt.group else rt.kind
    return ApiError(422, f'{kind} "{name}" is invalid: {summary}', details=_details(
        rt, name, causes=[{"field": f, "reason": r, "message": m} for f, r, m in causes]))


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)
