"""What the tenancy services share to judge input: model cleaning as a problem response, password rules,
and applying an update while recording what it changed."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models

from controlplane import errors
from projects.models import User


def changes_apply(instance: models.Model, updates: dict[str, Any]) -> dict[str, list[Any]]:
    """Apply ``updates`` to ``instance`` and return ``{field: [old, new]}`` for what really changed."""
    changes: dict[str, list[Any]] = {}
    for field, new in updates.items():
        old = getattr(instance, field)
        if old != new:
            changes[field] = [old, new]
            setattr(instance, field, new)
    return changes


def model_full_clean(instance: models.Model, **kwargs: Any) -> None:
    """``instance.full_clean(**kwargs)``, its complaints raised as a ValidationFailed problem."""
    try:
        instance.full_clean(**kwargs)
    except DjangoValidationError as exc:
        raise errors.ValidationFailed(
            "The request has invalid fields.",
            errors={f: [str(m) for e in errs for m in e.messages] for f, errs in exc.error_dict.items()}
            if hasattr(exc, "error_dict")
            else {"non_field_errors": list(exc.messages)},
        ) from exc


def password_validate(password: str, user: User | None = None, field: str = "password") -> None:
    try:
        password_validation.validate_password(password, user=user)
    except DjangoValidationError as exc:
        raise errors.ValidationFailed("The password is too weak.", errors={field: list(exc.messages)}) from exc
