"""What the provider workers share: the error they raise and guarded state changes (the step they answer is
``controlplane.workers.Step``)."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from deployments.models import Peering
from deployments.peering.lifecycle import transition


class CloudError(Exception):
    """An error from AWS or Azure. Transient ones (throttling, 5xx, connection) are retried with backoff;
    permanent ones move the peering to ``failed`` with the cloud's message."""

    def __init__(self, message: str, *, transient: bool, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.code = code


def advance(peering: Peering, to_status: str, *, reason: str = "", details: dict | None = None,
            **fields: object) -> bool:
    """Transition ``peering`` if nobody moved it meanwhile (e.g. the customer asked to delete it).

    Returns False, changing nothing, when the row's status is no longer the one this step started from.
    """
    with transaction.atomic():
        locked = Peering.objects.select_for_update().filter(pk=peering.pk).first()
        if locked is None or locked.status != peering.status:
            return False
        for name, value in fields.items():
            setattr(locked, name, value)
        transition(locked, to_status, reason=reason, details=details)
    for name in ("status", "status_reason", "status_changed_at", "activated_at", "deleted_at", *fields):
        setattr(peering, name, getattr(locked, name))
    return True


def save_fields(peering: Peering, **fields: object) -> None:
    """Record progress without a transition, only while the status is still the one the step started from."""
    for name, value in fields.items():
        setattr(peering, name, value)
    Peering.objects.filter(pk=peering.pk, status=peering.status).update(updated_at=timezone.now(), **fields)


def record_poll(peering: Peering, cloud_state: str) -> None:
    save_fields(peering, cloud_state=cloud_state[:40], last_polled_at=timezone.now())


def poll_delay(peering: Peering) -> float:
    """Look often while a person is likely acting on the other side, then back off (AWS allows 7 days)."""
    started = peering.requested_at or peering.created_at
    age = (timezone.now() - started).total_seconds()
    if age < settings.PEERING_FAST_POLL_WINDOW_SECONDS:
        return settings.PEERING_POLL_SECONDS
    return settings.PEERING_SLOW_POLL_SECONDS
