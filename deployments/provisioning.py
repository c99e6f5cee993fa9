"""Driving a deployment towards the state its status asks for. Called by workers, never by views.

One step at a time: each call looks at the deployment and at the cluster, does at most one kind of
write (an apply, a delete, or a transition), and says whether to look again. Every step is idempotent,
so a duplicated task, a worker killed halfway, or a retry after an API error all converge to the same
result. No database lock is held while Kubernetes is called.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from controlplane import telemetry
from controlplane.db import lock_row
from controlplane.outbound import BLOCKED_NETWORKS
from controlplane.queue import enqueue_on_commit
from controlplane.workers import DONE, Step
from deployments.http_auth.emqx_config import ACL_FILE, API_KEYS_FILE
from deployments.http_auth.emqx_config import broker_config as http_auth_broker_config
from deployments.lifecycle import ROLLING_RESTART, TRANSITIONAL, record_operation, transition
from deployments.models import (
    MANAGEMENT_API_KEY,
    Deployment,
    DeploymentEvent,
    HttpAuthConfig,
    ServerCertificate,
    Spec,
)
from deployments.models import DeploymentStatus as S
from deployments.mqtt_access.acl_conf import render_acl_conf
from deployments.mqtt_access.changes import PUSH_TASK
from deployments.peering.network import platform_network
from deployments.selectors import active_peering_cidrs
from deployments.tls.selectors import ca_bundle_pem, server_certificates_of
from deployments.tls.services import issue_for_deployment
from deployments.upgrades import plan as upgrade_plan
from deployments.upgrades.models import DeploymentUpgrade
from k8s.render import MQTT_PORTS, BrokerClusterSpec, BrokerTls
from k8s.services import (
    ClusterIndex,
    KubernetesError,
    ObservedCluster,
    apply_broker_cluster,
    cluster_internal_cidrs,
    delete_broker_cluster,
    drifted_objects,
    observe_broker_cluster,
    observe_region,
    repair_broker_cluster,
)

logger = logging.getLogger(__name__)

BROKER_NAME = "emqx"

# Steps of resizing a single-node deployment without leaving its clients without a node:
SURGE_NEW_NODE = 0  # run a second node with the new size next to the old one
SURGE_REPLACE_OLD = 1  # replace the old node (its clients are evacuated to the new one first)
SURGE_SHRINK = 2  # back to one node (the surge node's clients are evacuated to the replaced one)
REAPPLY_WHILE_WAITING_SECONDS = 60
# On the StatefulSet (not the pod template): which HTTP auth config generation the applied objects carry.
HTTP_AUTH_GENERATION_ANNOTATION = "mqcloud.io/http-auth-generation"
HTTP_AUTH_WATCH_TASK = "deployments.tasks.http_auth_rollout_watch"
#: The broker's egress keeps out of where the control plane never connects (k8s.render takes it from us).
EGRESS_BLOCKED_CIDRS = tuple(str(network) for network in BLOCKED_NETWORKS)


def _internal_cidrs(deployment: Deployment) -> tuple[str, ...]:
    """What the broker must never reach besides the private ranges: the cluster's pods and services, and the
    region's platform network (nodes, and on some clouds the control plane's own services)."""
    platform_cidr = platform_network(deployment.region).get("cidr")
    return (*cluster_internal_cidrs(region_id=deployment.region_id), *([platform_cidr] if platform_cidr else []))


@dataclass(frozen=True)
class SpecInputs:
    """What a deployment's rendering reads besides the deployment and its spec: asked one deployment at a time
    (``spec_inputs``), or for many in a few queries (``spec_inputs_many``, the reconciler's region pass)."""

    http_auth: HttpAuthConfig | None
    peered: tuple[str, ...]
    certificate: ServerCertificate | None
    ca_bundle: str
    #: The image of the deployment's EMQX version, and its upgrade under way (what the nodes roll to or back).
    image: str = ""
    upgrade: DeploymentUpgrade | None = None


def spec_inputs(deployment: Deployment) -> SpecInputs:
    return spec_inputs_many([deployment])[deployment.id]


def spec_inputs_many(deployments: list[Deployment]) -> dict[str, SpecInputs]:
    """``SpecInputs`` by deployment id: four queries for any number of deployments."""
    ids = [deployment.id for deployment in deployments]
    auth = {config.deployment_id: config for config in HttpAuthConfig.objects.filter(deployment_id__in=ids)}
    peered = active_peering_cidrs(deployment_ids=ids)
    certificates = server_certificates_of(deployment_ids=ids)
    bundles = {region_id: ca_bundle_pem(region_id=region_id) for region_id in {d.region_id for d in deployments}}
    images = upgrade_plan.version_images()
    upgrades = upgrade_plan.moving_upgrades(deployment_ids=ids)
    return {deployment.id: SpecInputs(auth.get(deployment.id), tuple(peered.get(deployment.id, ())),
                                      certificates.get(deployment.id), bundles[deployment.region_id],
                                      images.get(deployment.broker_version, settings.EMQX_IMAGE),
                                      upgrades.get(deployment.id))
            for deployment in deployments}


def _broker_tls(inputs: SpecInputs) -> BrokerTls | None:
    """The certificate the TLS listeners serve (with its CA, so clients holding only ca.pem's root get the
    chain), or None before the load balancer had an address to certify."""
    certificate = inputs.certificate
    if certificate is None:
        return None
    return BrokerTls(certificate_chain=certificate.certificate_pem + certificate.authority.certificate_pem,
                     private_key=certificate.private_key_pem, ca_certificates=inputs.ca_bundle)


def broker_cluster_spec(deployment: Deployment, spec: Spec, *, replicas: int | None = None,
                        surge_replicas: int | None = None, partition: int = 0,
                        inputs: SpecInputs | None = None, image: str = "") -> BrokerClusterSpec:
    inputs = inputs or spec_inputs(deployment)
    http_auth = inputs.http_auth
    extra_config, secret_env = http_auth_broker_config(http_auth)
    annotations = {HTTP_AUTH_GENERATION_ANNOTATION: str(http_auth.generation)} if http_auth else {}
    return BrokerClusterSpec(
        namespace=deployment.namespace,
        name=BROKER_NAME,
        organization_id=deployment.organization_id,
        project_id=deployment.project_id,
        deployment_id=deployment.id,
        tier=deployment.tier,
        replicas=spec.replicas if replicas is None else replicas,
        cpu_millicores=spec.cpu_millicores,
        memory_mib=spec.memory_mib,
        max_connections=spec.max_connections,
        image=image or inputs.image or settings.EMQX_IMAGE,
        node_cookie=deployment.node_cookie,
        dashboard_password=deployment.dashboard_password,
        blocked_cidrs=EGRESS_BLOCKED_CIDRS,
        surge_replicas=surge_replicas,
        partition=partition,
        extra_config=extra_config,
        secret_env=secret_env,
        # The ACL file starts empty (everything refused but superusers); the management API writes the rules.
        config_files={ACL_FILE: render_acl_conf([])},
        secret_files={API_KEYS_FILE: f"{MANAGEMENT_API_KEY}:{deployment.management_api_secret}:administrator\n"},
        annotations=annotations,
        # Peerings moving in or out of active re-apply this (deployments.peering.lifecycle.transition).
        peered_cidrs=inputs.peered,
        internal_cidrs=_internal_cidrs(deployment),
        tls=_broker_tls(inputs),
    )


def _carried_http_auth_generation(desired: BrokerClusterSpec) -> int | None:
    generation = desired.annotations.get(HTTP_AUTH_GENERATION_ANNOTATION)
    return int(generation) if generation is not None else None


def _open_restart(deployment_id: str) -> DeploymentEvent | None:
    """The deployment's latest rolling restart event, if that restart has not finished."""
    last = (DeploymentEvent.objects.filter(deployment_id=deployment_id, details__operation=ROLLING_RESTART)
            .order_by("-created_at", "-id").first())
    return last if last is not None and last.details.get("phase") != "finished" else None


def _mark_http_auth_live(deployment_id: str, generation: int | None) -> None:
    """Every node now runs HTTP auth configuration ``generation``: the one fact both the console and the ops
    site read as "live" (``selectors.http_auth_rollout``). Closes a rolling restart that was under way."""
    if generation is None:
        return
    with transaction.atomic():
        marked = HttpAuthConfig.objects.filter(deployment_id=deployment_id, generation=generation,
                                               applied_generation__lt=generation).update(
            applied_generation=generation)
        restart = _open_restart(deployment_id)
        if marked and restart is not None:
            deployment = Deployment.objects.get(pk=deployment_id)
            record_operation(deployment, operation=ROLLING_RESTART, phase="finished",
                             reason=f"Rolling restart done: every node runs HTTP authentication configuration "
                                    f"{generation}", details={"http_auth_generation": generation})


def _begin_http_auth_rollout(deployment: Deployment, desired: BrokerClusterSpec) -> None:
    """After a running deployment's objects were applied carrying an HTTP auth configuration its nodes do not
    run yet: the rolling restart that loads it is an operation of the lifecycle, watched until every node runs
    it. A stopped deployment loads it when it starts (the start's converge marks it live)."""
    generation = _carried_http_auth_generation(desired)
    if generation is None or deployment.status != S.RUNNING:
        return
    if not HttpAuthConfig.objects.filter(deployment_id=deployment.id, generation=generation,
                                         applied_generation__lt=generation).exists():
        return
    started = DeploymentEvent.objects.filter(deployment_id=deployment.id, details__operation=ROLLING_RESTART,
                                             details__phase="started", details__http_auth_generation=generation)
    if not started.exists():
        record_operation(deployment, operation=ROLLING_RESTART, phase="started",
                         reason=f"Rolling restart: the nodes restart one at a time to load HTTP authentication "
                                f"configuration {generation}", details={"http_auth_generation": generation})
    enqueue_on_commit(HTTP_AUTH_WATCH_TASK, deployment.id)


def http_auth_rollout_once(deployment_id: str) -> Step:
    """One look at a running deployment's rolling restart: once every node runs the configuration it loads, the
    configuration is live and the restart finished. One that outlasts the operation timeout is recorded as
    stalled once (the ops overview lists it); the reconciler's repair keeps looking every minute."""
    deployment = Deployment.objects.select_related("spec", "target_spec", "region").filter(pk=deployment_id).first()
    if deployment is None or deployment.status != S.RUNNING:
        return DONE
    restart = _open_restart(deployment_id)
    if restart is None:
        return DONE
    generation = int(restart.details.get("http_auth_generation", 0))
    desired = desired_cluster_spec(deployment)
    assert desired is not None
    observed = observe_broker_cluster(region_id=deployment.region_id, namespace=deployment.namespace,
                                      name=BROKER_NAME)
    if _settled(desired, observed):
        _mark_http_auth_live(deployment.id, generation)
        if _open_restart(deployment_id) is not None:
            # The configuration changed again meanwhile: this restart is over, the next one is the repair's.
            record_operation(deployment, operation=ROLLING_RESTART, phase="finished",
                             reason=f"Rolling restart done for HTTP authentication configuration {generation}",
                             details={"http_auth_generation": generation})
        return DONE
    note = f"{observed.ready_replicas}/{observed.desired_replicas} nodes ready"
    timeout = timedelta(seconds=settings.DEPLOYMENT_OPERATION_TIMEOUT_SECONDS)
    if timezone.now() - restart.created_at > timeout:
        if restart.details.get("phase") == "started":
            record_operation(deployment, operation=ROLLING_RESTART, phase="stalled",
                             reason=f"Rolling restart not done within {int(timeout.total_seconds())} s: {note}",
                             details={"http_auth_generation": generation})
        return DONE
    return Step(settings.DEPLOYMENT_POLL_SECONDS, note)


def desired_cluster_spec(deployment: Deployment, inputs: SpecInputs | None = None) -> BrokerClusterSpec | None:
    """What should be in the cluster for the deployment's current status (None: nothing)."""
    status = deployment.status
    if status == S.RUNNING:
        inputs = inputs or spec_inputs(deployment)
        if inputs.upgrade is not None:
            # A version upgrade under way: the image rolled to (or back to) and the nodes it may touch yet.
            shape = upgrade_plan.rollout_shape(inputs.upgrade)
            return broker_cluster_spec(deployment, deployment.spec, replicas=shape.replicas,
                                       surge_replicas=shape.surge_replicas, partition=shape.partition,
                                       inputs=inputs, image=shape.image)
    if status in (S.PENDING, S.PROVISIONING, S.RUNNING, S.STARTING):
        return broker_cluster_spec(deployment, deployment.spec, inputs=inputs)
    if status in (S.STOPPING, S.STOPPED):
        return broker_cluster_spec(deployment, deployment.spec, replicas=0, inputs=inputs)
    if status == S.SCALING:
        target = deployment.target_spec
        if deployment.spec.replicas == 1 and target.replicas == 1:
            step = deployment.rollout_step
            if step == SURGE_NEW_NODE:
                return broker_cluster_spec(deployment, target, surge_replicas=2, partition=1, inputs=inputs)
            if step == SURGE_REPLACE_OLD:
                return broker_cluster_spec(deployment, target, surge_replicas=2, partition=0, inputs=inputs)
        return broker_cluster_spec(deployment, target, inputs=inputs)
    return None


def _endpoints(host: str) -> dict[str, str]:
    return {name: f"{host}:{port}" for name, port in MQTT_PORTS.items()}


def _endpoint_host(deployment: Deployment) -> str:
    return (deployment.endpoints or {}).get("mqtts", "").rpartition(":")[0]


def _move(deployment_id: str, expected_status: str, to_status: str, *, reason: str = "", **fields) -> bool:
    """Transition under a row lock, only if nobody moved the deployment meanwhile."""
    with transaction.atomic():
        deployment = lock_row(Deployment, deployment_id)
        if deployment.status != expected_status:
            return False
        for name, value in fields.items():
            setattr(deployment, name, value)
        if to_status == S.FAILED:
            deployment.failed_operation = expected_status if expected_status != S.PENDING else S.PROVISIONING
        transition(deployment, to_status, reason=reason, details={"operation": expected_status})
    return True


def _save_fields(deployment_id: str, expected_status: str, **fields) -> None:
    Deployment.objects.filter(pk=deployment_id, status=expected_status).update(**fields)


def deployment_converge_once(deployment_id: str) -> Step:
    """One step of the deployment towards what its status asks for. Raises KubernetesError when retryable."""
    deployment = Deployment.objects.select_related("spec", "target_spec", "region").filter(pk=deployment_id).first()
    if deployment is None or deployment.status not in TRANSITIONAL:
        return DONE
    status = deployment.status
    timeout = timedelta(seconds=settings.DEPLOYMENT_OPERATION_TIMEOUT_SECONDS)
    poll = settings.DEPLOYMENT_POLL_SECONDS
    try:
        if status == S.PENDING:
            _move(deployment.id, S.PENDING, S.PROVISIONING, reason="worker picked it up")
            return Step(0, "provisioning")
        if status == S.DELETING:
            gone = delete_broker_cluster(region_id=deployment.region_id, namespace=deployment.namespace)
            if gone:
                _move(deployment.id, S.DELETING, S.DELETED, endpoints={})
                return DONE
            return _wait_or_fail(deployment, timeout, poll, "the namespace is still terminating")
        desired = desired_cluster_spec(deployment)
        assert desired is not None
        needs_apply = _needs_apply(deployment)
        if needs_apply:
            # A new generation applies what changed since the last apply; a re-apply while waiting, everything.
            applied = deployment.applied_objects if needs_apply == APPLY_CHANGED else None
            report = apply_broker_cluster(region_id=deployment.region_id, spec=desired, applied=applied)
            # Only the generation just applied is recorded; a newer request re-applies on its next step.
            Deployment.objects.filter(pk=deployment.id, desired_generation=deployment.desired_generation).update(
                applied_generation=deployment.desired_generation, last_reconciled_at=timezone.now(),
                applied_objects=report.hashes)
        observed = observe_broker_cluster(region_id=deployment.region_id, namespace=deployment.namespace,
                                          name=BROKER_NAME, desired=desired)
        return _advance(deployment, desired, observed, timeout, poll)
    except KubernetesError as exc:
        if exc.retryable:
            raise
        _move(deployment.id, status, S.FAILED, reason=f"Kubernetes refused the change: {exc}")
        return DONE


APPLY_CHANGED, APPLY_ALL = "changed", "all"


def _needs_apply(deployment: Deployment) -> str | None:
    """Apply once per requested change (the objects that changed); while waiting, only look, unless the last
    apply is getting old (then apply everything again, in case something was deleted by hand meanwhile)."""
    if deployment.last_reconciled_at is None:
        return APPLY_ALL
    if deployment.applied_generation != deployment.desired_generation:
        return APPLY_CHANGED
    if timezone.now() - deployment.last_reconciled_at > timedelta(seconds=REAPPLY_WHILE_WAITING_SECONDS):
        return APPLY_ALL
    return None


def _settled(desired: BrokerClusterSpec, observed: ObservedCluster) -> bool:
    replicas = desired.surge_replicas if desired.surge_replicas is not None else desired.replicas
    return observed.rolled_out and observed.desired_replicas == replicas and observed.ready_replicas == replicas


def _advance(deployment: Deployment, desired: BrokerClusterSpec, observed: ObservedCluster, timeout: timedelta,
             poll: float) -> Step:
    status = deployment.status
    if status == S.SCALING and desired.surge_replicas is not None:
        # A single node's surge: step 0 waits for the new node next to the old one (only the pods at or
        # above the partition take the new size), step 1 for the old one replaced; then step 2 shrinks.
        wanted_updated = 1 if desired.partition == 1 else 2
        if observed.ready_replicas == 2 and observed.updated_replicas >= wanted_updated and observed.exists:
            _save_fields(deployment.id, S.SCALING, rollout_step=deployment.rollout_step + 1,
                         desired_generation=deployment.desired_generation + 1)
            return Step(0, f"surge step {deployment.rollout_step} done")
        return _wait_or_fail(deployment, timeout, poll, "waiting for the surge node")
    if not _settled(desired, observed):
        return _wait_or_fail(deployment, timeout, poll,
                             f"{observed.ready_replicas}/{observed.desired_replicas} nodes ready")
    if status in (S.PROVISIONING, S.STARTING):
        if not observed.load_balancer_host:
            return _wait_or_fail(deployment, timeout, poll, "waiting for the load balancer address")
        _, issued = issue_for_deployment(deployment=deployment, host=observed.load_balancer_host)
        if issued:
            # A first certificate, or one for a new address: the listeners must serve it before the deployment
            # is called running, so apply it (a new generation) and wait for that rollout first.
            _save_fields(deployment.id, status, desired_generation=deployment.desired_generation + 1)
            return Step(0, "TLS certificate issued")
        if _move(deployment.id, status, S.RUNNING, endpoints=_endpoints(observed.load_balancer_host)):
            _mark_http_auth_live(deployment.id, _carried_http_auth_generation(desired))
            # A broker that just came up holds only what its data volume kept: send it the users and rules now
            # rather than at the reconciler's next drift check.
            enqueue_on_commit(PUSH_TASK, deployment.id)
    elif status == S.SCALING:
        if _move(deployment.id, S.SCALING, S.RUNNING, spec=deployment.target_spec, rollout_step=0):
            _mark_http_auth_live(deployment.id, _carried_http_auth_generation(desired))
    elif status == S.STOPPING:
        _move(deployment.id, S.STOPPING, S.STOPPED)
    return DONE


def _wait_or_fail(deployment: Deployment, timeout: timedelta, poll: float, observation: str) -> Step:
    if timezone.now() - deployment.status_changed_at > timeout:
        _move(deployment.id, deployment.status, S.FAILED,
              reason=f"Did not finish {deployment.status} within {int(timeout.total_seconds())} s: {observation}.")
        return DONE
    return Step(poll, observation)


def repair(deployment_id: str, observed: ClusterIndex | None = None) -> int:
    """Re-applies a settled deployment's objects (restoring anything deleted or edited by hand): all of them,
    or with ``observed`` (the region's objects, ``observe_region``) only those missing or drifted.

    Returns the number of Kubernetes API calls made.
    """
    deployment = Deployment.objects.select_related("spec", "target_spec", "region").filter(pk=deployment_id).first()
    if deployment is None or deployment.status not in SETTLED:
        return 0
    host = _endpoint_host(deployment)
    if deployment.status == S.RUNNING and host:
        # Backfill: deployments that reached running before certificates existed get theirs here (a no-op
        # once they have one for their host).
        issue_for_deployment(deployment=deployment, host=host)
    desired = desired_cluster_spec(deployment)
    assert desired is not None
    if observed is None:
        report = apply_broker_cluster(region_id=deployment.region_id, spec=desired)
    else:
        report = repair_broker_cluster(region_id=deployment.region_id, spec=desired, observed=observed)
    now = timezone.now()
    Deployment.objects.filter(pk=deployment.id).update(last_reconciled_at=now)
    # What this apply carried is applied, unless another change came meanwhile (then its own repair follows).
    Deployment.objects.filter(pk=deployment.id, desired_generation=deployment.desired_generation).update(
        applied_generation=deployment.desired_generation)
    _begin_http_auth_rollout(deployment, desired)
    return report.api_calls


SETTLED = (S.RUNNING, S.STOPPED)
REGION_CHUNK = 500  # deployments whose rendering inputs are read at once


@dataclass
class RegionRepair:
    checked: int = 0
    repaired: int = 0
    busy: int = 0
    api_calls: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def repair_region(region_id: str, *, lock: Callable[[str], AbstractContextManager[bool]]) -> RegionRepair:
    """One drift pass over a region's settled deployments: one LIST per kind of object for the whole region,
    then an apply only of what is missing or differs from what we render; an unchanged fleet is not written
    to at all. ``lock(deployment_id)`` is the per-deployment worker lock, taken only to repair (a deployment
    another worker holds is ``busy`` and left to the next pass)."""
    observed = observe_region(region_id=region_id)
    report = RegionRepair(api_calls=observed.api_calls)
    checked = []
    deployments = list(Deployment.objects.select_related("spec", "target_spec", "region").filter(
        region_id=region_id, status__in=SETTLED).order_by("id"))
    for start in range(0, len(deployments), REGION_CHUNK):
        chunk = deployments[start:start + REGION_CHUNK]
        inputs = spec_inputs_many(chunk)
        for deployment in chunk:
            report.checked += 1
            host = _endpoint_host(deployment)
            certificate = inputs[deployment.id].certificate
            if deployment.status == S.RUNNING and host and (certificate is None or certificate.host != host.lower()):
                issue_for_deployment(deployment=deployment, host=host)  # the backfill of repair()
                inputs[deployment.id] = spec_inputs(deployment)
            desired = desired_cluster_spec(deployment, inputs[deployment.id])
            assert desired is not None  # a settled deployment always has objects
            if not drifted_objects(spec=desired, observed=observed):
                checked.append(deployment.id)
                http_auth = inputs[deployment.id].http_auth
                if http_auth is not None and http_auth.applied_generation < http_auth.generation:
                    _begin_http_auth_rollout(deployment, desired)  # its watch task may have been lost
                continue
            with lock(deployment.id) as acquired:
                if not acquired:
                    report.busy += 1
                    continue
                report.api_calls += repair(deployment.id, observed)
                report.repaired += 1
    Deployment.objects.filter(pk__in=checked).update(last_reconciled_at=timezone.now())
    telemetry.reconcile_pass_recorded(region=region_id, checked=report.checked, drifted=report.repaired + report.busy,
                                      repaired=report.repaired)
    return report
