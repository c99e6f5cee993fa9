"""Writes for deployments and the catalog."""

from __future__ import annotations

import json
import re
import secrets
from decimal import Decimal
from pathlib import Path

from django.db import transaction

from controlplane import errors
from controlplane.db import lock_row, save_or_conflict
from controlplane.errors import field_invalid
from controlplane.queue import enqueue_on_commit
from deployments import hooks
from deployments.lifecycle import LIVE, transition
from deployments.models import Deployment, DeploymentEvent, Region, Spec, SpecPrice, Tier
from deployments.models import DeploymentStatus as S
from deployments.operations.progress import LIFECYCLE_STEPS, RETRY_GOAL, operation_start
from deployments.upgrades.models import BrokerVersion
from deployments.upgrades.plan import upgrade_blocks_operation
from projects.audit import audit_record
from projects.models import Project
from projects.roles import Perm
from projects.tenancy import Principal

CATALOG_FILE = Path(__file__).resolve().parent / "data" / "catalog.json"


@transaction.atomic
def catalog_sync(*, path: Path = CATALOG_FILE) -> dict[str, int]:
    """Upsert regions, specs and prices from the data file; entries no longer listed are deactivated.

    Idempotent: running it twice changes nothing the second time.
    """
    data = json.loads(Path(path).read_text())
    region_ids, spec_ids = [], []
    for entry in data["regions"]:
        Region.objects.update_or_create(
            id=entry["id"],
            defaults={k: entry[k] for k in ("provider", "code", "name", "tiers", "sites")}
            | {"active": True, "network": entry.get("network", {})},
        )
        region_ids.append(entry["id"])
    for entry in data["specs"]:
        spec, _ = Spec.objects.update_or_create(
            id=entry["id"],
            defaults={
                k: entry[k]
                for k in ("tier", "name", "max_connections", "max_messages_per_second", "replicas",
                          "cpu_millicores", "memory_mib")
            }
            | {"active": True},
        )
        for price in entry["prices"]:
            SpecPrice.objects.update_or_create(
                spec=spec,
                currency=price["currency"],
                defaults={"hourly": Decimal(price["hourly"]), "stopped_hourly": Decimal(price["stopped_hourly"]),
                          "annual": Decimal(price["annual"])},
            )
        spec_ids.append(entry["id"])
    Region.objects.exclude(id__in=region_ids).update(active=False)
    Spec.objects.exclude(id__in=spec_ids).update(active=False)
    versions = data.get("broker_versions", [])
    for entry in versions:
        # The file seeds versions; ops change their status and end of support in the admin afterwards, and a
        # sync must not undo that: only versions the database lacks are created.
        BrokerVersion.objects.get_or_create(
            version=entry["version"],
            defaults={"image": entry["image"], "status": entry["status"],
                      "end_of_support": entry.get("end_of_support")})
    return {"regions": len(region_ids), "specs": len(spec_ids), "broker_versions": len(versions)}



# --- deployments: what customers ask for ------------------------------------------------------------
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")
PROTECTED_BY_DEFAULT = frozenset({Tier.PROFESSIONAL, Tier.FLAGSHIP})


def _enqueue_converge(deployment: Deployment) -> None:
    enqueue_on_commit("deployments.tasks.deployment_converge", deployment.id)


def _locked(principal: Principal, deployment: Deployment) -> Deployment:
    return lock_row(Deployment, deployment.pk, organization=principal.organization)


def _name_taken(name: str) -> errors.Conflict:
    message = f"The project already has a deployment named {name}."
    return errors.Conflict(message, errors={"name": [message]})


def _check_spec_allowed(principal: Principal, spec: Spec, region: Region | None = None) -> None:
    if not spec.active:
        raise field_invalid("spec", f"The spec {spec.id} is no longer offered.")
    if spec.tier == Tier.FLAGSHIP and not principal.organization.flagship_enabled:
        raise field_invalid("spec", "The flagship tier is by invitation; ask support to enable it for your "
                                    "organization.")
    if region is not None and spec.tier not in region.tiers:
        raise field_invalid("spec", f"The {spec.tier} tier is not offered in {region.name}.")


def _check_may_run(principal: Principal) -> None:
    """Refuses (409) when an app above us says the organization may not run deployments now
    (``hooks.start_blockers``: billing, for an invoice unpaid past the grace period)."""
    reasons = hooks.start_blockers.collect(organization=principal.organization)
    if reasons:
        raise errors.Conflict(reasons[0])


def deployment_create(*, principal: Principal, project: Project, name: str, region: Region,
                      spec: Spec) -> Deployment:
    principal.require(Perm.DEPLOYMENTS_WRITE)
    if not principal.can_see_project(project.id):
        raise errors.NotFound(f"No project {project.id}.")
    if not DNS_LABEL.match(name):
        raise field_invalid("name", "Use 1 to 40 lowercase letters, digits and hyphens, starting with a letter "
                                    "and not ending with a hyphen.")
    if not region.active or principal.organization.site not in region.sites:
        raise field_invalid("region", f"The region {region.id} is not available to your organization.")
    _check_spec_allowed(principal, spec, region)
    _check_may_run(principal)
    with transaction.atomic():
        if Deployment.objects.filter(project=project, name=name).exclude(status=S.DELETED).exists():
            raise _name_taken(name)
        deployment = Deployment(
            organization=principal.organization, project=project, name=name, region=region, spec=spec,
            target_spec=spec, tier=spec.tier, deletion_protection=spec.tier in PROTECTED_BY_DEFAULT,
            node_cookie=secrets.token_urlsafe(32), dashboard_password=secrets.token_urlsafe(24),
        )
        # The check above cannot see a concurrent request's uncommitted row: the constraint settles that race.
        save_or_conflict(deployment, _name_taken(name), force_insert=True)
        DeploymentEvent.objects.create(
            organization=principal.organization, deployment=deployment, from_status="", to_status=S.PENDING,
            spec=spec, actor_label=principal.actor_label, reason="created", created_at=deployment.created_at,
        )
        operation_start(organization_id=deployment.organization_id, type="create", deployment=deployment,
                        steps=LIFECYCLE_STEPS["create"], requested_by=principal.actor_label)
        audit_record(principal=principal, action="deployment.create", target=deployment,
                     changes={"name": name, "project": project.id, "region": region.id, "spec": spec.id})
        _enqueue_converge(deployment)
    return deployment


def deployment_update(*, principal: Principal, deployment: Deployment, name: str | None = None,
                      deletion_protection: bool | None = None) -> Deployment:
    principal.require(Perm.DEPLOYMENTS_WRITE)
    if name is not None and not DNS_LABEL.match(name):
        raise field_invalid("name", "Use 1 to 40 lowercase letters, digits and hyphens, starting with a letter.")
    with transaction.atomic():
        deployment = _locked(principal, deployment)
        if deployment.status in (S.DELETING, S.DELETED):
            raise errors.Conflict(f"The deployment is {deployment.status}.")
        changes = {}
        if name is not None and name != deployment.name:
            if Deployment.objects.filter(project_id=deployment.project_id, name=name).exclude(
                    status=S.DELETED).exclude(pk=deployment.pk).exists():
                raise _name_taken(name)
            changes["name"] = [deployment.name, name]
            deployment.name = name
        if deletion_protection is not None and deletion_protection != deployment.deletion_protection:
            changes["deletion_protection"] = [deployment.deletion_protection, deletion_protection]
            deployment.deletion_protection = deletion_protection
        if changes:
            save_or_conflict(deployment, _name_taken(name or deployment.name),
                             update_fields=["name", "deletion_protection", "updated_at"])
            audit_record(principal=principal, action="deployment.update", target=deployment, changes=changes)
    return deployment


def _begin(principal: Principal, deployment: Deployment, to_status: str, *, action: str,
           required: tuple[str, ...], changes: dict | None = None, prepare=None) -> Deployment:
    """Common shape of every lifecycle request: lock, check state, transition, audit, enqueue."""
    principal.require(Perm.DEPLOYMENTS_WRITE)
    with transaction.atomic():
        deployment = _locked(principal, deployment)
        if deployment.status not in required:
            raise errors.Conflict(
                f"Cannot {action.split('.')[-1]} a deployment that is {deployment.status} "
                f"(it must be {' or '.join(required)})."
            )
        if upgrade_blocks_operation(deployment.pk) and action != "deployment.delete":
            raise errors.Conflict(f"Cannot {action.split('.')[-1]} a deployment while its version upgrade runs.")
        if prepare is not None:
            prepare(deployment)
        kind = action.split(".")[-1]
        steps = LIFECYCLE_STEPS.get(kind) or [to_status, RETRY_GOAL[to_status]]
        # The deployment's state machine has just allowed this request, so an operation still open on it is
        # stale (its deployment was moved outside a transition): it is closed as superseded, not a 409.
        operation_start(organization_id=deployment.organization_id, type=kind, deployment=deployment, steps=steps,
                        requested_by=principal.actor_label, params=changes or {}, supersede=True)
        transition(deployment, to_status, actor_label=principal.actor_label, reason=action)
        audit_record(principal=principal, action=action, target=deployment, changes=changes or {})
        _enqueue_converge(deployment)
    return deployment


def deployment_scale(*, principal: Principal, deployment: Deployment, spec: Spec) -> Deployment:
    if spec.tier != deployment.tier:
        raise field_invalid("spec", f"Scaling stays within the {deployment.tier} tier; {spec.id} is {spec.tier}.")
    if spec.id == deployment.spec_id:
        raise field_invalid("spec", f"The deployment already runs {spec.id}.")
    _check_spec_allowed(principal, spec, deployment.region)

    def prepare(locked: Deployment) -> None:
        locked.target_spec = spec
        locked.rollout_step = 0
        locked.desired_generation += 1

    return _begin(principal, deployment, S.SCALING, action="deployment.scale", required=(S.RUNNING,),
                  changes={"spec": [deployment.spec_id, spec.id]}, prepare=prepare)


def deployment_stop(*, principal: Principal, deployment: Deployment) -> Deployment:
    def prepare(locked: Deployment) -> None:
        locked.desired_generation += 1

    return _begin(principal, deployment, S.STOPPING, action="deployment.stop", required=(S.RUNNING,),
                  prepare=prepare)


def deployment_start(*, principal: Principal, deployment: Deployment) -> Deployment:
    _check_may_run(principal)

    def prepare(locked: Deployment) -> None:
        locked.desired_generation += 1

    return _begin(principal, deployment, S.STARTING, action="deployment.start", required=(S.STOPPED,),
                  prepare=prepare)


def deployment_retry(*, principal: Principal, deployment: Deployment) -> Deployment:
    """Re-drives the operation that failed (provisioning, scaling, stopping, starting or deleting)."""
    operation = deployment.failed_operation or S.PROVISIONING
    if operation in (S.PROVISIONING, S.STARTING):
        _check_may_run(principal)  # retrying these would run the brokers again

    def prepare(locked: Deployment) -> None:
        locked.desired_generation += 1  # apply again: whatever was half-done is redone

    return _begin(principal, deployment, operation, action="deployment.retry", required=(S.FAILED,),
                  changes={"operation": operation}, prepare=prepare)


def deployment_delete(*, principal: Principal, deployment: Deployment) -> Deployment:
    """Idempotent: deleting a deployment that is already going (or gone) changes nothing."""
    principal.require(Perm.DEPLOYMENTS_WRITE)
    with transaction.atomic():
        deployment = _locked(principal, deployment)
        if deployment.status in (S.DELETING, S.DELETED):
            return deployment
        if deployment.deletion_protection:
            raise errors.Conflict("Deletion protection is on for this deployment; turn it off before deleting "
                                  "(API: PATCH deletion_protection=false).")
        if deployment.status not in LIVE:
            raise errors.Conflict(f"Cannot delete a deployment that is {deployment.status}.")
        # A delete ends whatever was under way (a provisioning, a scale): that operation is cancelled.
        operation_start(organization_id=deployment.organization_id, type="delete", deployment=deployment,
                        steps=LIFECYCLE_STEPS["delete"], requested_by=principal.actor_label, supersede=True)
        transition(deployment, S.DELETING, actor_label=principal.actor_label, reason="deployment.delete")
        audit_record(principal=principal, action="deployment.delete", target=deployment)
        _enqueue_converge(deployment)
    return deployment


# --- operators --------------------------------------------------------------------------------------
def deployment_force_reconcile(*, principal: Principal, deployment: Deployment) -> None:
    """Ops: drive the deployment now instead of waiting for the next reconciler pass."""
    audit_record(principal=principal, action="deployment.force_reconcile", target=deployment)
    settled = deployment.status in (S.RUNNING, S.STOPPED)
    enqueue_on_commit("deployments.tasks.deployment_repair" if settled else "deployments.tasks.deployment_converge",
                      deployment.id)


def deployment_mark_failed(*, principal: Principal, deployment: Deployment, reason: str) -> Deployment:
    """Ops: stop a stuck operation; the customer (or ops) can retry it."""
    with transaction.atomic():
        deployment = lock_row(Deployment, deployment.pk)
        if deployment.status == S.FAILED:
            return deployment
        deployment.failed_operation = deployment.status if deployment.status != S.PENDING else S.PROVISIONING
        transition(deployment, S.FAILED, reason=reason, actor_label=principal.actor_label)
        audit_record(principal=principal, action="deployment.mark_failed", target=deployment,
                     changes={"reason": reason})
    return deployment
