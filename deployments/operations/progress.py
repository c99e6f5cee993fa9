"""The operation state machine and its steps: the low layer that the deployment lifecycle and the workers call.

pending → running → succeeded | failed | cancelled (and pending → cancelled | failed). Every move is an
:class:`OperationEvent`. Each function is idempotent: a task retried after its worker died calls it again, and
finds the step already recorded (so it resumes from there) or the operation already finished (so nothing
changes).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction
from django.utils import timezone

from controlplane import errors
from controlplane.db import lock_row
from controlplane.state_machine import require_transition
from deployments.models import Deployment, Operation, OperationEvent
from deployments.models import OperationStatus as O

TRANSITIONS: dict[str, frozenset[str]] = {
    O.PENDING: frozenset({O.RUNNING, O.FAILED, O.CANCELLED, O.SUCCEEDED}),
    O.RUNNING: frozenset({O.SUCCEEDED, O.FAILED, O.CANCELLED}),
    O.SUCCEEDED: frozenset(),
    O.FAILED: frozenset(),
    O.CANCELLED: frozenset(),
}
ACTIVE = frozenset({O.PENDING, O.RUNNING})
TERMINAL = frozenset({O.SUCCEEDED, O.FAILED, O.CANCELLED})

#: A step: its name, or (name, cancellable).
StepSpec = str | tuple[str, bool]


def _step_row(spec: StepSpec) -> dict:
    name, cancellable = (spec, False) if isinstance(spec, str) else spec
    return {"name": name, "status": "pending", "started_at": None, "finished_at": None,
            "cancellable": bool(cancellable)}


def _move(operation: Operation, to_status: str, *, step: str = "", note: str = "") -> None:
    require_transition(TRANSITIONS, kind="operation", from_status=operation.status, to_status=to_status)
    OperationEvent.objects.create(operation=operation, from_status=operation.status, to_status=to_status,
                                  step=step, note=note[:500])
    operation.status = to_status


def active_for_deployment(deployment_id: str) -> Operation | None:
    """The operation now moving the deployment (at most one at a time; a peering's operation runs beside it),
    or None."""
    return (Operation.objects.filter(deployment_id=deployment_id, peering_id="", status__in=ACTIVE)
            .order_by("-created_at").first())


@transaction.atomic
def operation_start(*, organization_id: str, type: str, steps: Sequence[StepSpec],
                    deployment: Deployment | None = None, project_id: str | None = None, peering_id: str = "",
                    requested_by: str = "", params: dict | None = None, exclusive: bool = True,
                    supersede: bool = False) -> Operation:
    """Records a new pending operation; call it in the transaction of the request's change.

    With ``exclusive`` (the default), another active operation on the same deployment is a 409 — unless
    ``supersede``: a delete ends whatever was under way (that operation is cancelled)."""
    if deployment is not None and not peering_id:
        current = Operation.objects.select_for_update().filter(deployment=deployment, peering_id="",
                                                                status__in=ACTIVE)
        for other in current:
            if supersede:
                _finish(other, O.CANCELLED, note=f"superseded by {type}")
            elif exclusive:
                raise errors.Conflict(f"The deployment has an operation under way ({other.type}, {other.id}); "
                                      f"wait for it to finish.")
    operation = Operation.objects.create(
        organization_id=organization_id, project_id=project_id or (deployment.project_id if deployment else None),
        deployment=deployment, peering_id=peering_id, type=type, steps=[_step_row(s) for s in steps],
        current_step="", requested_by=requested_by[:254], params=params or {},
    )
    OperationEvent.objects.create(operation=operation, from_status="", to_status=O.PENDING, note="requested")
    if operation.steps:
        _enter_step(operation, operation.steps[0]["name"])
        operation.save()
    return operation


def _enter_step(operation: Operation, name: str) -> bool:
    """Marks the steps before ``name`` done and ``name`` running; False when ``name`` is already current or
    passed (a retried worker), or not in the plan."""
    names = [s["name"] for s in operation.steps]
    if name not in names:
        return False
    index = names.index(name)
    if operation.current_step and operation.current_step in names and names.index(operation.current_step) >= index:
        return False
    now = timezone.now().isoformat()
    for row in operation.steps[:index]:
        if row["status"] != "succeeded":
            row["status"] = "succeeded"
            row["started_at"] = row["started_at"] or now
            row["finished_at"] = now
    operation.steps[index].update(status="running", started_at=now)
    operation.current_step = name
    if index > 0 and operation.status == O.PENDING:
        operation.started_at = operation.started_at or timezone.now()
        _move(operation, O.RUNNING, step=name)
    else:
        OperationEvent.objects.create(operation=operation, from_status=operation.status,
                                      to_status=operation.status, step=name, note="step")
    return True


@transaction.atomic
def operation_step(operation: Operation | str, name: str) -> Operation:
    """Records that the operation reached step ``name`` (idempotent). Starts a pending operation."""
    operation = lock_row(Operation, operation if isinstance(operation, str) else operation.pk)
    if operation.status in TERMINAL:
        return operation
    changed = _enter_step(operation, name)
    if changed:
        operation.save()
    return operation


def _finish(operation: Operation, to_status: str, *, error: str = "", note: str = "") -> None:
    now = timezone.now()
    for row in operation.steps:
        if row["status"] == "running" or (to_status == O.SUCCEEDED and row["status"] == "pending"):
            row["status"] = {O.SUCCEEDED: "succeeded", O.FAILED: "failed", O.CANCELLED: "cancelled"}[to_status]
            row["started_at"] = row["started_at"] or now.isoformat()
            row["finished_at"] = now.isoformat()
    _move(operation, to_status, step=operation.current_step, note=note or error)
    operation.error = error[:500]
    operation.started_at = operation.started_at or now
    operation.finished_at = now
    operation.save()


def _finish_locked(operation: Operation | str, to_status: str, *, error: str = "", note: str = "") -> Operation:
    operation = lock_row(Operation, operation if isinstance(operation, str) else operation.pk)
    if operation.status in TERMINAL:
        return operation  # idempotent: a retried task finishing it again changes nothing
    _finish(operation, to_status, error=error, note=note)
    return operation


@transaction.atomic
def operation_succeed(operation: Operation | str) -> Operation:
    return _finish_locked(operation, O.SUCCEEDED)


@transaction.atomic
def operation_fail(operation: Operation | str, error: str) -> Operation:
    return _finish_locked(operation, O.FAILED, error=error or "failed")


@transaction.atomic
def operation_mark_cancelled(operation: Operation | str, note: str = "cancelled") -> Operation:
    """Ends the operation as cancelled; what undoing its change takes is the caller's (see services)."""
    return _finish_locked(operation, O.CANCELLED, note=note)


def current_step_cancellable(operation: Operation) -> bool:
    if operation.status not in ACTIVE:
        return False
    for row in operation.steps:
        if row["name"] == operation.current_step:
            return bool(row.get("cancellable"))
    return False


# --- following the deployment state machine ----------------------------------------------------------
#: The steps of each lifecycle operation are the deployment statuses it goes through; the last is its goal.
#: A create may be cancelled while still pending (nothing was provisioned yet).
LIFECYCLE_STEPS: dict[str, list[StepSpec]] = {
    "create": [("pending", True), "provisioning", "running"],
    "scale": ["scaling", "running"],
    "stop": ["stopping", "stopped"],
    "start": ["starting", "running"],
    "delete": ["deleting", "deleted"],
}
RETRY_GOAL = {"provisioning": "running", "scaling": "running", "stopping": "stopped", "starting": "running",
              "deleting": "deleted"}


def follow_deployment(deployment: Deployment, to_status: str, *, reason: str = "") -> None:
    """Called by ``lifecycle.transition`` in its transaction: the deployment's move advances, ends or fails
    its operation. Because the deployment's status is the record a resumed worker starts from, the operation
    resumes with it."""
    operation = active_for_deployment(deployment.pk)
    if operation is None:
        return
    operation = lock_row(Operation, operation.pk)
    names = [s["name"] for s in operation.steps]
    if to_status == "failed":
        _finish(operation, O.FAILED, error=reason or "The deployment failed.")
    elif names and to_status == names[-1]:
        _enter_step(operation, to_status)
        _finish(operation, O.SUCCEEDED)
    elif to_status in names:
        if _enter_step(operation, to_status):
            operation.save()


# --- following the peering state machine -------------------------------------------------------------
PEERING_STEPS: dict[str, list[StepSpec]] = {
    "peering_create": ["pending", "requested", "active"],
    "peering_delete": ["deleting", "deleted"],
}
#: Both clouds' waiting states (AWS: the customer accepts; Azure: the customer adds the reverse side).
_PEERING_STEP_OF = {"pending_acceptance": "requested", "initiated": "requested"}


def follow_peering(peering_id: str, to_status: str, *, reason: str = "") -> None:
    """Called by the peering lifecycle's ``transition``: advances, ends or fails the peering's operation."""
    operation = (Operation.objects.select_for_update().filter(peering_id=peering_id, status__in=ACTIVE)
                 .order_by("-created_at").first())
    if operation is None:
        return
    names = [s["name"] for s in operation.steps]
    step = _PEERING_STEP_OF.get(to_status, to_status)
    if to_status in ("failed", "expired"):
        _finish(operation, O.FAILED, error=reason or f"The peering is {to_status}.")
    elif names and step == names[-1]:
        _enter_step(operation, step)
        _finish(operation, O.SUCCEEDED)
    elif step in names:
        if _enter_step(operation, step):
            operation.save()
