"""Database helpers every app's services share."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, OperationalError, models, transaction

from controlplane import errors


def save_or_conflict(instance: models.Model, conflict: errors.Conflict, **save_kwargs: Any) -> None:
    """Saves a row whose uniqueness a constraint guards; a violation (also by a concurrent request that won the
    race past the service's own check) becomes ``conflict`` instead of a 500, and the surrounding transaction
    survives (the save runs in a savepoint)."""
    try:
        with transaction.atomic():
            instance.save(**save_kwargs)
    except IntegrityError as exc:
        raise conflict from exc


def is_database_busy(exc: BaseException | None) -> bool:
    """SQLite's writer lock was not free within the busy timeout (the embedded default under concurrent
    writes): the request can simply be retried."""
    return isinstance(exc, OperationalError) and any(
        phrase in str(exc).lower() for phrase in ("database is locked", "database table is locked"))


def lock_row(model: type[models.Model] | models.QuerySet, pk: object, **filters: object) -> models.Model:
    """The row ``pk`` (narrowed by ``filters``, e.g. the caller's organization) read with ``SELECT … FOR UPDATE``,
    so a concurrent writer waits until this transaction ends. Call inside ``transaction.atomic``. Raises the
    model's ``DoesNotExist`` when no row matches; pass a queryset to add ``select_related`` or ``of=``."""
    queryset = model if isinstance(model, models.QuerySet) else model._default_manager.all()
    return queryset.select_for_update().get(pk=pk, **filters)
