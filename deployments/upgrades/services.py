"""Writes of version upgrades: the request (checked against the catalog), and the node-by-node rollout, one
idempotent step at a time (``deployments.tasks.deployment_upgrade_step``).

States: scheduled → rolling → succeeded, or rolling → rolling_back → failed (the previous image restored on
every node, the reason kept), or scheduled/rolling → canceled when the deployment is deleted (or, while scheduled, its
operation is cancelled). The step reached
is saved before the next one starts, so a worker that dies resumes where it was; every transition and node
step is a ``DeploymentEvent`` of operation ``upgrade``, and its ``Operation`` (``op_…``) follows it (``_mirror``)."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from controlplane import errors
from controlplane.db import lock_row
from controlplane.errors import field_invalid
from controlplane.queue import enqueue_on_commit
from controlplane.workers import DONE, Step
from deployments.lifecycle import record_operation
from deployments.maintenance.selectors import schedule_get
from deployments.models import Deployment, Operation, OperationStatus
from deployments.models import DeploymentStatus as S
from deployments.operations.progress import (
    StepSpec,
    operation_fail,
    operation_mark_cancelled,
    operation_start,
    operation_step,
    operation_succeed,
)
from deployments.provisioning import BROKER_NAME, desired_cluster_spec
from deployments.upgrades.models import BrokerVersion, DeploymentUpgrade, UpgradeWhen
from deployments.upgrades.models import UpgradeStatus as U
from deployments.upgrades.plan import OPEN, RolloutShape, refusal, rollout_shape, step_count, version_images
from k8s.services import ObservedPod, apply_broker_cluster, delete_broker_pod, observe_broker_pods
from projects.audit import audit_record
from projects.roles import Perm
from projects.tenancy import Principal

UPGRADE = "upgrade"
STEP_TASK = "deployments.tasks.deployment_upgrade_step"
#: The longest a scheduled upgrade's task sleeps before looking again (the beat re-drives lost ones too).
SCHEDULED_RECHECK_SECONDS = 300

SCHEDULED_STEP = "scheduled"


def operation_steps(replicas: int) -> list[StepSpec]:
    """The upgrade's ``Operation`` plan: waiting (cancellable until it starts), then one step per node in the
    order they are replaced (a single node: the surge node, the old node, the surge node removed)."""
    if replicas == 1:
        nodes: list[StepSpec] = [f"{BROKER_NAME}-1 (surge)", f"{BROKER_NAME}-0", "surge node removed"]
    else:
        nodes = [f"{BROKER_NAME}-{ordinal}" for ordinal in range(replicas - 1, -1, -1)]
    return [(SCHEDULED_STEP, True), *nodes]


def _mirror(upgrade: DeploymentUpgrade, phase: str) -> None:
    """Moves the upgrade's Operation with it: the API's ``/operations/{id}`` and the console's operation views
    show the upgrade's steps; a failure carries the upgrade's reason."""
    if not upgrade.operation_id:
        return
    names = [step if isinstance(step, str) else step[0] for step in operation_steps(upgrade.replicas or 1)]
    if phase in ("started", "step") and upgrade.step + 1 < len(names):
        operation_step(upgrade.operation_id, names[upgrade.step + 1])
    elif phase == "succeeded":
        operation_succeed(upgrade.operation_id)
    elif phase == "failed":
        operation_fail(upgrade.operation_id, upgrade.error)
    elif phase == "canceled":
        operation_mark_cancelled(upgrade.operation_id, note=upgrade.error or "canceled")


def _record(upgrade: DeploymentUpgrade, deployment: Deployment, phase: str, reason: str, **details: object) -> None:
    record_operation(deployment, operation=UPGRADE, phase=phase, reason=reason,
                     details={"upgrade": upgrade.id, "from_version": upgrade.from_version,
                              "to_version": upgrade.to_version, **details})
    _mirror(upgrade, phase)


def upgrade_request(*, principal: Principal, deployment: Deployment, version: str,
                    when: str = UpgradeWhen.NOW) -> DeploymentUpgrade:
    """Asks for ``deployment`` to run EMQX ``version`` now or from its next maintenance window.

    400 for a version it may not go to (unknown, older, deprecated, skipping a major) or a window it lacks;
    409 unless it is running with no other upgrade open."""
    principal.require(Perm.DEPLOYMENTS_WRITE)
    if when not in UpgradeWhen.values:
        raise field_invalid("when", f"Use one of: {', '.join(UpgradeWhen.values)}.")
    reason = refusal(deployment.broker_version, version, list(BrokerVersion.objects.all()))
    if reason:
        raise field_invalid("version", reason)
    now = timezone.now()
    scheduled_for = now
    if when == UpgradeWhen.NEXT_WINDOW:
        occurrences = schedule_get(owner=deployment, now=now, count=1).occurrences
        if not occurrences:
            raise field_invalid("when", "The deployment has no maintenance window (nor its project): set one, or "
                                        "upgrade now.")
        scheduled_for = occurrences[0].start
    with transaction.atomic():
        deployment = lock_row(Deployment, deployment.pk, organization=principal.organization)
        if deployment.status != S.RUNNING:
            raise errors.Conflict(f"Cannot upgrade a deployment that is {deployment.status} (it must be running).")
        if DeploymentUpgrade.objects.filter(deployment=deployment, status__in=OPEN).exists():
            raise errors.Conflict("The deployment already has an upgrade scheduled or under way.")
        # Another operation under way on the deployment is a 409 here too.
        operation = operation_start(organization_id=deployment.organization_id, type=UPGRADE, deployment=deployment,
                                    steps=operation_steps(deployment.spec.replicas),
                                    requested_by=principal.actor_label,
                                    params={"version": version, "from_version": deployment.broker_version,
                                            "when": when, "scheduled_for": scheduled_for.isoformat()})
        try:
            with transaction.atomic():
                upgrade = DeploymentUpgrade.objects.create(
                    organization_id=deployment.organization_id, deployment=deployment,
                    from_version=deployment.broker_version, to_version=version, when=when,
                    scheduled_for=scheduled_for, actor_label=principal.actor_label[:254],
                    replicas=deployment.spec.replicas, operation_id=operation.id)
        except IntegrityError as exc:  # a concurrent request won the race (deployment_upgrade_one_open)
            raise errors.Conflict("The deployment already has an upgrade scheduled or under way.") from exc
        _record(upgrade, deployment, "scheduled",
                f"Upgrade to EMQX {version} requested for {scheduled_for:%Y-%m-%d %H:%M} UTC"
                if when == UpgradeWhen.NEXT_WINDOW else f"Upgrade to EMQX {version} requested")
        audit_record(principal=principal, action="deployment.upgrade", target=deployment,
                     changes={"broker_version": [deployment.broker_version, version], "when": when,
                              "scheduled_for": scheduled_for.isoformat()})
        # A scheduled one's first step only sleeps until the window (the task re-sends itself with a countdown).
        enqueue_on_commit(STEP_TASK, upgrade.id)
    return upgrade


def stale_upgrades(*, now: dt.datetime | None = None) -> list[str]:
    """Open upgrades that are due and whose task chain has not looked at them for a while (its task was lost:
    a broker restart without persistence, a purge): the beat sends them a new one. A live chain looks at
    least every ``SCHEDULED_RECHECK_SECONDS``, so one not seen for twice that is not running."""
    now = now or timezone.now()
    quiet_since = now - dt.timedelta(seconds=2 * SCHEDULED_RECHECK_SECONDS)
    return list(DeploymentUpgrade.objects.filter(status__in=OPEN, scheduled_for__lte=now, updated_at__lt=quiet_since)
                .values_list("id", flat=True))


def _save(upgrade: DeploymentUpgrade, expected: str, **fields: object) -> bool:
    """Moves the upgrade only if nobody moved it meanwhile (a duplicate task): compare-and-set on status and
    step."""
    fields.setdefault("updated_at", timezone.now())
    moved = DeploymentUpgrade.objects.filter(pk=upgrade.pk, status=expected, step=upgrade.step).update(**fields)
    for name, value in fields.items():
        setattr(upgrade, name, value)
    return bool(moved)


def _settled_on(shape: RolloutShape, pods: dict[int, ObservedPod], images: str) -> bool:
    """Every node the step renders exists, is Ready and not terminating, none beyond them, and every node at or
    above the partition runs ``images``."""
    wanted = shape.surge_replicas if shape.surge_replicas is not None else shape.replicas
    live = {o: p for o, p in pods.items() if not p.terminating}
    if set(live) != set(range(wanted or 0)):
        return False
    return all(p.ready and (o < shape.partition or p.image == images) for o, p in live.items())


def upgrade_step_once(upgrade_id: str) -> Step:
    """One look at an upgrade, and at most one move. Raises KubernetesError when retryable."""
    upgrade = DeploymentUpgrade.objects.filter(pk=upgrade_id).first()
    if upgrade is None or upgrade.status not in OPEN:
        return DONE
    deployment = Deployment.objects.select_related("spec", "target_spec", "region").get(pk=upgrade.deployment_id)
    now = timezone.now()
    # The heartbeat the beat reads (``stale_upgrades``): a chain of tasks is alive while this moves.
    DeploymentUpgrade.objects.filter(pk=upgrade.pk).update(updated_at=now)
    poll = settings.DEPLOYMENT_POLL_SECONDS
    if deployment.status in (S.DELETING, S.DELETED):
        if _save(upgrade, upgrade.status, status=U.CANCELED, finished_at=now,
                 error=f"The deployment is {deployment.status}."):
            _record(upgrade, deployment, "canceled", f"Upgrade to EMQX {upgrade.to_version} canceled: the "
                                                     f"deployment is {deployment.status}")
        return DONE
    if upgrade.status == U.SCHEDULED:
        return _start(upgrade, deployment, now, poll)
    images = version_images()
    shape = rollout_shape(upgrade, images)
    desired = desired_cluster_spec(deployment)
    assert desired is not None
    apply_broker_cluster(region_id=deployment.region_id, spec=desired)  # idempotent: a resumed step re-applies
    pods = observe_broker_pods(region_id=deployment.region_id, namespace=deployment.namespace, name=BROKER_NAME)
    if upgrade.status == U.ROLLING_BACK:
        return _roll_back(upgrade, deployment, shape, pods, now, poll)
    if upgrade.step >= step_count(upgrade.replicas):
        return _finish(upgrade, deployment, now)
    if _settled_on(shape, pods, shape.image):
        done = f"{BROKER_NAME}-{shape.node}" if shape.node is not None else "surge node removed"
        if _save(upgrade, U.ROLLING, step=upgrade.step + 1, step_started_at=now):
            _record(upgrade, deployment, "step", f"Upgrade to EMQX {upgrade.to_version}: {done} ready",
                    step=upgrade.step, node=shape.node)
        return Step(0, f"step {upgrade.step} done")
    timeout = dt.timedelta(seconds=settings.UPGRADE_NODE_TIMEOUT_SECONDS)
    waiting = f"{BROKER_NAME}-{shape.node}" if shape.node is not None else "the surge node to go"
    if now - (upgrade.step_started_at or upgrade.updated_at) > timeout:
        error = (f"Node {waiting} did not become ready on EMQX {upgrade.to_version} within "
                 f"{int(timeout.total_seconds())} s; rolled back to {upgrade.from_version}.")
        if _save(upgrade, U.ROLLING, status=U.ROLLING_BACK, error=error[:500], step_started_at=now):
            _record(upgrade, deployment, "rolling_back", error, node=shape.node)
        return Step(0, "rolling back")
    return Step(poll, f"waiting for {waiting} on EMQX {upgrade.to_version}")


def _start(upgrade: DeploymentUpgrade, deployment: Deployment, now: dt.datetime, poll: float) -> Step:
    operation = Operation.objects.filter(pk=upgrade.operation_id).only("status").first()
    if operation is not None and operation.status == OperationStatus.CANCELLED:
        # Cancelled while it waited (``POST /operations/{id}/cancel``, or superseded by a lifecycle request).
        if _save(upgrade, U.SCHEDULED, status=U.CANCELED, finished_at=now, error="The operation was cancelled."):
            _record(upgrade, deployment, "canceled", f"Upgrade to EMQX {upgrade.to_version} canceled before it "
                                                     f"started")
        return DONE
    if now < upgrade.scheduled_for:
        return Step(min(SCHEDULED_RECHECK_SECONDS, (upgrade.scheduled_for - now).total_seconds()), "scheduled")
    if deployment.status != S.RUNNING:
        # Stopped, failed or scaling when the window opened: it goes once the deployment is running again.
        return Step(max(poll, 30.0), f"waiting for the deployment to be running (it is {deployment.status})")
    if _save(upgrade, U.SCHEDULED, status=U.ROLLING, replicas=deployment.spec.replicas, step=0,
             step_started_at=now):
        _record(upgrade, deployment, "started", f"Upgrade to EMQX {upgrade.to_version} started: "
                                                f"{deployment.spec.replicas} node(s), one at a time")
    return Step(0, "started")


def _finish(upgrade: DeploymentUpgrade, deployment: Deployment, now: dt.datetime) -> Step:
    with transaction.atomic():
        if not _save(upgrade, U.ROLLING, status=U.SUCCEEDED, finished_at=now):
            return DONE
        Deployment.objects.filter(pk=deployment.pk).update(broker_version=upgrade.to_version, updated_at=now)
        _record(upgrade, deployment, "succeeded", f"Upgraded to EMQX {upgrade.to_version}: every node runs it")
    return DONE


def _roll_back(upgrade: DeploymentUpgrade, deployment: Deployment, shape: RolloutShape,
               pods: dict[int, ObservedPod], now: dt.datetime, poll: float) -> Step:
    if _settled_on(shape, pods, shape.image):
        if _save(upgrade, U.ROLLING_BACK, status=U.FAILED, finished_at=now):
            _record(upgrade, deployment, "failed", upgrade.error)
        return DONE
    for pod in pods.values():
        # The StatefulSet controller never replaces a pod that is not Ready: delete the ones stuck on the new
        # image, for it to recreate them from the restored template.
        if not pod.terminating and not pod.ready and pod.image != shape.image:
            delete_broker_pod(region_id=deployment.region_id, namespace=deployment.namespace, pod=pod.name)
    return Step(poll, f"rolling back to EMQX {upgrade.from_version}")
