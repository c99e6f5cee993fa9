"""The peering state machine: the allowed transitions in one place, each one recorded as an event."""

from __future__ import annotations

from django.utils import timezone

from controlplane.state_machine import require_transition
from deployments.lifecycle import request_apply
from deployments.models import Peering, PeeringEvent
from deployments.models import PeeringStatus as P
from deployments.operations.progress import follow_peering

TRANSITIONS: dict[str, frozenset[str]] = {
    # pending: the request is recorded; the worker has not reached the cloud yet.
    P.PENDING: frozenset({P.PENDING_ACCEPTANCE, P.INITIATED, P.FAILED, P.DELETING}),
    # AWS: requested, waiting for the customer to accept (at most 7 days).
    P.PENDING_ACCEPTANCE: frozenset({P.ACTIVE, P.FAILED, P.EXPIRED, P.DELETING}),
    # Azure: our side exists, waiting for the customer's reverse side.
    P.INITIATED: frozenset({P.ACTIVE, P.FAILED, P.DELETING}),
    # The cloud may break an active peering (the customer deleted their side): failed, with why.
    P.ACTIVE: frozenset({P.FAILED, P.DELETING}),
    # Retry: the request is made again from the start (the customer fixed what the cloud refused).
    P.FAILED: frozenset({P.PENDING, P.DELETING}),
    P.EXPIRED: frozenset({P.DELETING}),
    P.DELETING: frozenset({P.DELETED, P.FAILED}),
    P.DELETED: frozenset(),
}

#: States in which a worker is expected to be moving the peering along (and polls the cloud).
TRANSITIONAL = frozenset({P.PENDING, P.PENDING_ACCEPTANCE, P.INITIATED, P.DELETING})
#: States whose CIDR is reserved within the deployment and the region's route tables. A failed peering routes
#: nothing (its routes are removed or were never added), so it must not block asking again with the same range;
#: a retry checks the range is still free.
RESERVING = frozenset(set(TRANSITIONS) - {P.DELETED, P.FAILED})
#: States that keep a reason worth showing.
WITH_REASON = frozenset({P.FAILED, P.EXPIRED, P.DELETED})


def can_transition(from_status: str, to_status: str) -> bool:
    return to_status in TRANSITIONS.get(from_status, frozenset())


def transition(peering: Peering, to_status: str, *, reason: str = "", actor_label: str = "system",
               details: dict | None = None) -> PeeringEvent:
    """Moves ``peering`` (locked by the caller with select_for_update) and records the event.

    The caller may have set other fields on ``peering`` (cloud id, timestamps); they are saved with it.
    """
    from_status = peering.status
    require_transition(TRANSITIONS, kind="peering", from_status=from_status, to_status=to_status)
    now = timezone.now()
    peering.status = to_status
    peering.status_reason = reason[:500] if to_status in WITH_REASON else ""
    peering.status_changed_at = now
    if to_status == P.ACTIVE:
        peering.activated_at = now
    if to_status == P.DELETED:
        peering.deleted_at = now
    peering.save()
    if P.ACTIVE in (from_status, to_status):
        # The broker's egress policy lists the active peerings' CIDRs: apply it again now, not at the next
        # reconciler pass (a removed peering's range must close at once).
        request_apply(deployment_id=peering.deployment_id)
    event = PeeringEvent.objects.create(
        organization_id=peering.organization_id, peering=peering, from_status=from_status, to_status=to_status,
        reason=reason[:500], actor_label=actor_label[:254], details=details or {}, created_at=now,
    )
    follow_peering(peering.id, to_status, reason=reason)
    return event
