"""Database helpers every app's services share."""

from __future__ import annotations

from django.db import IntegrityError, models, transaction

from controlplane import errors


def save_or_conflict(instance: models.Model, conflict: errors.Conflict, **save_kwargs: object) -> None:
    """Saves a row whose uniqueness a constraint guards; a violation (also by a concurrent request that won the
    race past the service's own check) becomes ``conflict`` instead of a 500, and the surrounding transaction
    survives (the save runs in a savepoint)."""
    try:
        with transaction.atomic():
            instance.save(**save_kwargs)
    except IntegrityError as exc:
        raise conflict from exc
