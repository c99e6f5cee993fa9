"""What every write to a deployment's MQTT access does around its rows: lock the deployment and its access row
(one change at a time per deployment, so generations are gapless and a rules replace never interleaves with a
user import), and bump the generation so the change is pushed to the broker once the transaction commits."""

from __future__ import annotations

from controlplane import errors
from controlplane.db import lock_row
from controlplane.queue import enqueue_on_commit
from deployments.models import Deployment, MqttAccess
from deployments.models import DeploymentStatus as S
from projects.tenancy import Principal

PUSH_TASK = "deployments.tasks.mqtt_access_push"


def locked_access(principal: Principal, deployment: Deployment) -> tuple[Deployment, MqttAccess]:
    """The deployment and its access row, locked until the transaction ends."""
    locked = lock_row(Deployment, deployment.pk, organization=principal.organization)
    if locked.status in (S.DELETING, S.DELETED):
        raise errors.Conflict(f"The deployment is {locked.status}.")
    access, _ = MqttAccess.objects.get_or_create(deployment=locked)
    return locked, lock_row(MqttAccess, locked.pk)


def record_change(access: MqttAccess) -> None:
    """Records a change to the users or rules and has it pushed to the broker once this transaction commits."""
    access.generation += 1
    access.save(update_fields=["generation", "updated_at"])
    enqueue_on_commit(PUSH_TASK, access.deployment_id)
