"""The one error hierarchy. Services raise these; the API maps them once to RFC 9457 problems."""

from __future__ import annotations


class DomainError(Exception):
    status_code = 400
    title = "Bad request"
    type_slug = "bad-request"

    def __init__(self, detail: str, *, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or {}


class ValidationFailed(DomainError):
    status_code = 400
    title = "Validation failed"
    type_slug = "validation-failed"


class NotAuthenticated(DomainError):
    status_code = 401
    title = "Not authenticated"
    type_slug = "not-authenticated"


class PermissionDenied(DomainError):
    status_code = 403
    title = "Permission denied"
    type_slug = "permission-denied"


class NotFound(DomainError):
    status_code = 404
    title = "Not found"
    type_slug = "not-found"


class Conflict(DomainError):
    status_code = 409
    title = "Conflict"
    type_slug = "conflict"


class IdempotencyMismatch(DomainError):
    status_code = 422
    title = "Idempotency key reused with a different request"
    type_slug = "idempotency-key-mismatch"


class RateLimited(DomainError):
    """Too many attempts; ``retry_after`` seconds until the window closes (the Retry-After header)."""

    status_code = 429
    title = "Too many requests"
    type_slug = "rate-limited"

    def __init__(self, detail: str, *, retry_after: float, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(detail, errors=errors)
        self.retry_after = max(1, int(retry_after + 0.999))


class Unavailable(DomainError):
    """Something the request needs (a deployment's broker) cannot be reached now; try again in
    ``retry_after`` seconds (the Retry-After header)."""

    status_code = 503
    title = "Service unavailable"
    type_slug = "unavailable"

    def __init__(self, detail: str, *, retry_after: float = 5) -> None:
        super().__init__(detail)
        self.retry_after = max(1, int(retry_after + 0.999))


def field_invalid(field: str, message: str, *, detail: str | None = None) -> ValidationFailed:
    """The error for one bad field: ``message`` next to ``field`` (and as the detail unless one is given).
    Every service builds a one-field error through this, so the problem's shape is the same everywhere."""
    return ValidationFailed(message if detail is None else detail, errors={field: [message]})
