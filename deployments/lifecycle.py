"""The deployment state machine: the allowed transitions in one place, each one recorded as an event."""

from __future__ import annotations

from django.db.models import F
from django.utils import timezone

from controlplane.queue import enqueue_on_commit
from controlplane.state_machine import require_transition
from deployments.models import Deployment, DeploymentEvent
from deployments.models import DeploymentStatus as S
from deployments.operations.progress import follow_deployment

TRANSITIONS: dict[str, frozenset[str]] = {
    S.PENDING: frozenset({S.PROVISIONING, S.FAILED, S.DELETING}),
    S.PROVISIONING: frozenset({S.RUNNING, S.FAILED, S.DELETING}),
    S.RUNNING: frozenset({S.SCALING, S.STOPPING, S.DELETING, S.FAILED}),
    S.SCALING: frozenset({S.RUNNING, S.FAILED, S.DELETING}),
    S.STOPPING: frozenset({S.STOPPED, S.FAILED, S.DELETING}),
    S.STOPPED: frozenset({S.STARTING, S.DELETING}),
    S.STARTING: frozenset({S.RUNNING, S.FAILED, S.DELETING}),
    # Retrying re-enters the state of the operation that failed.
    S.FAILED: frozenset({S.PROVISIONING, S.SCALING, S.STOPPING, S.STARTING, S.DELETING}),
    S.DELETING: frozenset({S.DELETED, S.FAILED}),
    S.DELETED: frozenset(),
}

#: States in which a worker is expected to be moving the deployment along.
TRANSITIONAL = frozenset({S.PENDING, S.PROVISIONING, S.SCALING, S.STOPPING, S.STARTING, S.DELETING})
#: States billed by the hour (DESIGN.md: running and scaling).
BILLABLE = frozenset({S.RUNNING, S.SCALING})
#: States billed at the spec's small stopped (storage) rate: the volumes and addresses are kept.
STORAGE_BILLABLE = frozenset({S.STOPPED})
#: States in which the deployment still has (or is getting) resources in a cluster.
LIVE = frozenset(set(TRANSITIONS) - {S.DELETED})


def can_transition(from_status: str, to_status: str) -> bool:
    return to_status in TRANSITIONS.get(from_status, frozenset())


def transition(
    deployment: Deployment,
    to_status: str,
    *,
    reason: str = "",
    actor_label: str = "system",
    details: dict | None = None,
) -> DeploymentEvent:
    """Moves ``deployment`` (locked by the caller with select_for_update) and records the event."""
    from_status = deployment.status
    require_transition(TRANSITIONS, kind="deployment", from_status=from_status, to_status=to_status)
    now = timezone.now()
    deployment.status = to_status
    deployment.status_reason = reason if to_status == S.FAILED else ""
    deployment.status_changed_at = now
    if to_status == S.DELETED:
        deployment.deleted_at = now
    deployment.save(update_fields=["status", "status_reason", "status_changed_at", "deleted_at", "updated_at",
                                   "failed_operation", "spec", "target_spec", "desired_generation",
                                   "applied_generation", "endpoints", "rollout_step"])
    event = DeploymentEvent.objects.create(
        organization_id=deployment.organization_id,
        deployment=deployment,
        from_status=from_status,
        to_status=to_status,
        spec_id=deployment.spec_id,
        reason=reason,
        actor_label=actor_label[:254],
        details=details or {},
        created_at=now,
    )
    follow_deployment(deployment, to_status, reason=reason)
    return event


#: A running deployment's nodes restarting one at a time to load a new HTTP auth configuration (events of phase
#: ``started``, ``stalled``, ``finished``, with ``http_auth_generation`` in their details).
ROLLING_RESTART = "rolling_restart"


def record_operation(deployment: Deployment, *, operation: str, phase: str, reason: str,
                     details: dict | None = None) -> DeploymentEvent:
    """Records a step of an operation that does not change the status (a rolling restart of a running
    deployment): an event from the status to itself, so the lifecycle the console, the API and the ops site show
    has it, while metering (which reads only the status in force) is unaffected."""
    return DeploymentEvent.objects.create(
        organization_id=deployment.organization_id,
        deployment=deployment,
        from_status=deployment.status,
        to_status=deployment.status,
        spec_id=deployment.spec_id,
        reason=reason[:500],
        actor_label="system",
        details={"operation": operation, "phase": phase, **(details or {})},
    )


def schedule_apply(deployment: Deployment) -> None:
    """After ``deployment``'s desired generation moved outside a status change: a settled deployment is
    re-applied by the repair task, a moving one picks the change up on its next converge step (the
    generations differ). On commit, so the worker reads what this transaction wrote."""
    if deployment.status in (S.RUNNING, S.STOPPED):
        enqueue_on_commit("deployments.tasks.deployment_repair", deployment.id)
    elif deployment.status in TRANSITIONAL:
        enqueue_on_commit("deployments.tasks.deployment_converge", deployment.id)
    # failed: the change is applied when the operation is retried; deleted: nothing to apply


def request_apply(*, deployment_id: str) -> None:
    """Something the broker's objects are rendered from changed (e.g. its active peerings): a new desired
    generation, and a worker to apply it."""
    Deployment.objects.filter(pk=deployment_id).update(desired_generation=F("desired_generation") + 1,
                                                       updated_at=timezone.now())
    deployment = Deployment.objects.only("id", "status").filter(pk=deployment_id).first()
    if deployment is not None:
        schedule_apply(deployment)
