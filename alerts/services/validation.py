"""The field-level validation error the alerts services raise (shared by channels and rules)."""

from __future__ import annotations

from controlplane import errors


def invalid(field: str, message: str) -> errors.ValidationFailed:
    """A ``ValidationFailed`` for one field with one message."""
    return errors.ValidationFailed("The request has invalid fields.", errors={field: [message]})
