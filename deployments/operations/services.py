"""Customer-facing writes on operations: cancelling one whose current step allows it."""

from __future__ import annotations

from django.db import transaction

from controlplane import errors
from controlplane.db import lock_row
from controlplane.queue import enqueue_on_commit
from deployments.lifecycle import transition
from deployments.models import Deployment, Operation
from deployments.models import DeploymentStatus as S
from deployments.operations.progress import current_step_cancellable, operation_mark_cancelled
from projects.audit import audit_record
from projects.roles import Perm
from projects.tenancy import Principal


def operation_cancel(*, principal: Principal, operation: Operation) -> Operation:
    """Cancels the operation when its current step is cancellable, else 409.

    Cancellable: a create still ``pending`` (no worker has provisioned anything: the deployment goes to deleting
    and is never provisioned), and any step an operation's author marked cancellable (a scheduled upgrade).
    """
    principal.require(Perm.DEPLOYMENTS_WRITE)
    with transaction.atomic():
        operation = lock_row(Operation, operation.pk, organization=principal.organization)
        if not current_step_cancellable(operation):
            raise errors.Conflict(f"The operation is {operation.status} at step {operation.current_step or '-'}, "
                                  f"which cannot be cancelled.")
        operation = operation_mark_cancelled(operation, note=f"cancelled by {principal.actor_label}")
        if operation.type == "create" and operation.deployment_id:
            deployment = lock_row(Deployment, operation.deployment_id)
            if deployment.status == S.PENDING:
                transition(deployment, S.DELETING, actor_label=principal.actor_label, reason="operation.cancel")
                enqueue_on_commit("deployments.tasks.deployment_converge", deployment.id)
        audit_record(principal=principal, action="operation.cancel", target=operation,
                     changes={"type": operation.type})
    return operation
