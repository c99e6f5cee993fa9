"""Deployment workers: thin and idempotent. Take an id, run one converge step, schedule the next.

A per-deployment lock (in the cache: Redis in production) keeps two workers from driving the same
deployment at once; a duplicate task simply finds the lock taken and leaves, because the holder
schedules its own follow-up.
"""

from __future__ import annotations

import logging

from celery import shared_task

from controlplane.locks import exclusive
from deployments import provisioning
from deployments.lifecycle import TRANSITIONAL
from deployments.maintenance import planned
from deployments.models import Deployment
from deployments.mqtt_access import delivery
from deployments.mqtt_access.broker_api import BrokerError, BrokerUnavailable
from deployments.peering.steps import CloudError
from deployments.peering.worker import peering_converge_once, peerings_to_drive
from deployments.tls import services as tls_services
from deployments.upgrades import services as upgrades
from deployments.upgrades.models import DeploymentUpgrade
from k8s.services import KubernetesError

logger = logging.getLogger(__name__)

LOCK_SECONDS = 120
REGION_LOCK_SECONDS = 600


def deployment_lock(deployment_id: str):
    return exclusive(f"deployment:{deployment_id}", timeout=LOCK_SECONDS)


def _chained_step(task, argument: str, *, deployment_id: str, step_once, busy_again_in: float | None = None) -> str:
    """One step of a chain that schedules its own next step: ``step_once(argument)`` under the deployment's lock,
    then ``task`` again when the step asks. A lock held elsewhere (a duplicate, or the repair for a moment) is
    "busy": its holder, or the beat for a lost chain, goes on, unless ``busy_again_in`` asks to look again."""
    with deployment_lock(deployment_id) as acquired:
        if not acquired:
            if busy_again_in is not None:
                task.apply_async((argument,), countdown=busy_again_in)
            return "busy"
        step = step_once(argument)
    if step.again_in is not None:
        task.apply_async((argument,), countdown=step.again_in)
    return step.note or "done"


@shared_task(name="deployments.tasks.deployment_converge", bind=True, acks_late=True,
             autoretry_for=(KubernetesError, ConnectionError, TimeoutError), retry_backoff=2, retry_backoff_max=120,
             retry_jitter=True, max_retries=None)
def deployment_converge(self, deployment_id: str) -> str:
    return _chained_step(deployment_converge, deployment_id, deployment_id=deployment_id,
                         step_once=provisioning.deployment_converge_once)


@shared_task(name="deployments.tasks.deployment_repair", bind=True, acks_late=True,
             autoretry_for=(KubernetesError, ConnectionError, TimeoutError), retry_backoff=5, retry_backoff_max=300,
             max_retries=5)
def deployment_repair(self, deployment_id: str) -> int:
    with deployment_lock(deployment_id) as acquired:
        if not acquired:
            return 0
        return provisioning.repair(deployment_id)


@shared_task(name="deployments.tasks.http_auth_rollout_watch", bind=True, acks_late=True,
             autoretry_for=(KubernetesError, ConnectionError, TimeoutError), retry_backoff=2, retry_backoff_max=120,
             retry_jitter=True, max_retries=10)
def http_auth_rollout_watch(self, deployment_id: str) -> str:
    """Follows a running deployment's rolling restart until every node runs its new HTTP auth configuration."""
    return _chained_step(http_auth_rollout_watch, deployment_id, deployment_id=deployment_id,
                         step_once=provisioning.http_auth_rollout_once, busy_again_in=2)


@shared_task(name="deployments.tasks.deployment_upgrade_step", bind=True, acks_late=True,
             autoretry_for=(KubernetesError, ConnectionError, TimeoutError), retry_backoff=2, retry_backoff_max=120,
             retry_jitter=True, max_retries=None)
def deployment_upgrade_step(self, upgrade_id: str) -> str:
    """One step of a version upgrade (``deployments.upgrades.services``), under the deployment's lock so the
    reconciler's repair never applies between a step's apply and its look."""
    deployment_id = DeploymentUpgrade.objects.filter(pk=upgrade_id).values_list("deployment_id", flat=True).first()
    if deployment_id is None:
        return "gone"
    return _chained_step(deployment_upgrade_step, upgrade_id, deployment_id=deployment_id,
                         step_once=upgrades.upgrade_step_once)


@shared_task(name="deployments.tasks.deployments_reconcile")
def deployments_reconcile() -> dict[str, int]:
    """Beat job: re-drive every deployment in a transitional state (a task each: there are few), and one drift
    pass per region over the settled ones (not a task per deployment: an unchanged fleet costs one LIST per
    kind of object per region, and no write)."""
    counts = {"converge": 0, "regions": 0}
    for deployment_id in Deployment.objects.filter(status__in=TRANSITIONAL).values_list("id", flat=True):
        deployment_converge.delay(deployment_id)
        counts["converge"] += 1
    # An upgrade whose task was lost (or whose window opened) is re-driven like a transitional deployment.
    for upgrade_id in upgrades.stale_upgrades():
        deployment_upgrade_step.delay(upgrade_id)
        counts["upgrades"] = counts.get("upgrades", 0) + 1
    for region_id in (Deployment.objects.filter(status__in=provisioning.SETTLED).order_by()
                      .values_list("region_id", flat=True).distinct()):
        deployments_reconcile_region.delay(region_id)
        counts["regions"] += 1
    return counts


@shared_task(name="deployments.tasks.deployments_reconcile_region", bind=True, acks_late=True,
             autoretry_for=(KubernetesError, ConnectionError, TimeoutError), retry_backoff=5, retry_backoff_max=60,
             max_retries=3)
def deployments_reconcile_region(self, region_id: str) -> dict[str, int]:
    with exclusive(f"reconcile-region:{region_id}", timeout=REGION_LOCK_SECONDS) as acquired:
        if not acquired:
            return {"busy": 1}  # the previous pass is still going
        return provisioning.repair_region(region_id, lock=deployment_lock).as_dict()


# --- VPC peering ------------------------------------------------------------------------------------
def peering_lock(peering_id: str):
    return exclusive(f"peering:{peering_id}", timeout=LOCK_SECONDS)


class PeeringTransientError(Exception):
    """A retryable cloud error (throttling, 5xx, connection trouble), raised for Celery's autoretry."""


@shared_task(name="deployments.tasks.peering_converge", bind=True, acks_late=True,
             autoretry_for=(PeeringTransientError, ConnectionError, TimeoutError), retry_backoff=2,
             retry_backoff_max=300, retry_jitter=True, max_retries=None)
def peering_converge(self, peering_id: str) -> str:
    """One idempotent step of a peering; reschedules itself while waiting for the cloud or the customer."""
    with peering_lock(peering_id) as acquired:
        if not acquired:
            return "busy"
        try:
            step = peering_converge_once(peering_id)
        except CloudError as exc:  # only transient ones get here
            logger.info("peering %s: %s; retrying", peering_id, exc.message)
            raise PeeringTransientError(exc.message) from exc
    if step.again_in is not None:
        peering_converge.apply_async((peering_id,), countdown=step.again_in)
    return step.note or "done"


@shared_task(name="deployments.tasks.peerings_reconcile")
def peerings_reconcile() -> int:
    """Beat job: re-drive pending/initiated/pending_acceptance/deleting peerings (the 7-day expiry happens in
    their step), check active ones still are, and tear down peerings of deployments being deleted."""
    peering_ids = peerings_to_drive()
    for peering_id in peering_ids:
        peering_converge.delay(peering_id)
    return len(peering_ids)


# --- MQTT access: users and rules on the running brokers ------------------------------------------------
@shared_task(name="deployments.tasks.mqtt_access_push", bind=True, acks_late=True,
             autoretry_for=(BrokerUnavailable, ConnectionError, TimeoutError), retry_backoff=2,
             retry_backoff_max=120, retry_jitter=True, max_retries=12)
def mqtt_access_push(self, deployment_id: str) -> str:
    with exclusive(f"mqtt-access:{deployment_id}", timeout=LOCK_SECONDS) as acquired:
        if not acquired:
            # Another push is running; it may have read an older generation, so come back once it is done.
            mqtt_access_push.apply_async((deployment_id,), countdown=5)
            return "busy"
        return delivery.mqtt_access_push(deployment_id=deployment_id)


@shared_task(name="deployments.tasks.mqtt_access_reconcile")
def mqtt_access_reconcile() -> dict[str, int]:
    """Beat job: push what a broker does not have yet, and repair brokers that drifted (a restarted node with
    empty tables, a hand edit). A broker that cannot be reached is skipped until the next pass."""
    counts = {"pending": 0, "drifted": 0, "unreachable": 0}
    pending = set(delivery.deployments_needing_push())
    for deployment_id in pending:
        mqtt_access_push.delay(deployment_id)
        counts["pending"] += 1
    for deployment_id in delivery.live_deployment_ids():
        if deployment_id in pending:
            continue
        try:
            drifted = delivery.mqtt_access_drifted(deployment_id=deployment_id)
        except BrokerError as exc:
            logger.info("mqtt access of %s not checked: %s", deployment_id, exc)
            counts["unreachable"] += 1
            continue
        if drifted:
            mqtt_access_push.delay(deployment_id)
            counts["drifted"] += 1
    return counts


# --- platform maintenance -------------------------------------------------------------------------------
@shared_task(name="deployments.tasks.planned_maintenance_pass")
def planned_maintenance_pass() -> dict[str, int]:
    """Beat job (every 5 minutes): plan the upgrades off deprecated versions, announce platform maintenance a
    week ahead, start it inside its window occurrence, move it when the occurrence went. Each row moves one step
    under its lock: a rerun is a no-op."""
    with exclusive("planned-maintenance-pass", timeout=LOCK_SECONDS * 5) as acquired:
        if not acquired:
            return {"busy": 1}
        forced = planned.forced_upgrades_plan()
        return planned.planned_maintenance_pass() | ({"upgrades_planned": forced} if forced else {})


# --- TLS ------------------------------------------------------------------------------------------------
@shared_task(name="deployments.tasks.tls_certificates_renew")
def tls_certificates_renew() -> dict[str, int]:
    """Beat job (hourly): rotate CAs and re-issue certificates near expiry; a rerun is a no-op, and a failed
    run is simply the next hour's job (renewal starts weeks before expiry)."""
    with exclusive("tls-certificates-renew", timeout=LOCK_SECONDS * 5) as acquired:
        if not acquired:
            return {"busy": 1}
        return tls_services.renew_expiring()
