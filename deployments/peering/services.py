"""Writes for peerings: every one audited; outside work is recorded here and done by the worker."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from django.conf import settings
from django.db import transaction

from controlplane import errors
from controlplane.db import lock_row
from controlplane.errors import field_invalid
from controlplane.queue import enqueue_on_commit
from deployments.models import Deployment, DeploymentStatus, Operation, Peering, PeeringEvent, Tier
from deployments.models import PeeringStatus as P
from deployments.operations.progress import ACTIVE, PEERING_STEPS, operation_mark_cancelled, operation_start
from deployments.peering import customer_side, selectors, validation
from deployments.peering.lifecycle import transition
from deployments.peering.network import platform_network
from projects.audit import audit_record
from projects.roles import Perm
from projects.tenancy import Principal

PEERABLE_TIERS = frozenset({Tier.PROFESSIONAL, Tier.FLAGSHIP})
#: Deployment states in which no new peering may be requested.
CLOSED_DEPLOYMENT_STATES = frozenset({DeploymentStatus.DELETING, DeploymentStatus.DELETED})


def _enqueue_converge(peering: Peering) -> None:
    enqueue_on_commit("deployments.tasks.peering_converge", peering.id)


def _start_operation(principal: Principal, peering: Peering, kind: str) -> None:
    # A delete (or a retry) ends whatever operation the peering still had under way.
    for operation in Operation.objects.filter(peering_id=peering.id, status__in=ACTIVE):
        operation_mark_cancelled(operation, note=f"superseded by {kind}")
    operation_start(organization_id=peering.organization_id, type=kind, deployment=peering.deployment,
                    peering_id=peering.id, steps=PEERING_STEPS[kind], requested_by=principal.actor_label)


def peering_create(*, principal: Principal, deployment: Deployment, provider: str,
                   fields: Mapping[str, str]) -> Peering:
    """Records the request (status ``pending``) and hands it to the worker. 409 for basic deployments."""
    principal.require(Perm.DEPLOYMENTS_WRITE)
    if deployment.tier not in PEERABLE_TIERS:
        raise errors.Conflict(f"VPC peering needs a professional or flagship deployment; {deployment.name} is "
                              f"{deployment.tier}.")
    with transaction.atomic():
        # Locks the deployment: two concurrent requests cannot both pass the overlap check.
        deployment = lock_row(Deployment.objects.select_related("region"), deployment.pk,
                              organization=principal.organization)
        if deployment.status in CLOSED_DEPLOYMENT_STATES:
            raise errors.Conflict(f"The deployment is {deployment.status}; it cannot be peered.")
        region = deployment.region
        network = platform_network(region)
        cleaned = validation.validate_request(
            provider=provider, fields=fields, platform_provider=region.provider, platform_region=region.code,
            platform_cidr=network.get("cidr"), other_cidrs=selectors.reserved_cidrs(deployment=deployment))
        if provider == "aws":
            _check_region_routes(deployment, cleaned["cidr"])
        if len(selectors.reserved_cidrs(deployment=deployment)) >= settings.PEERING_MAX_PER_DEPLOYMENT:
            raise errors.Conflict(f"A deployment can have at most {settings.PEERING_MAX_PER_DEPLOYMENT} peerings; "
                                  f"delete one first.")
        values = {"cidr": cleaned["cidr"]}
        if provider == "aws":
            values |= {"account_id": cleaned["account_id"], "vpc_id": cleaned["vpc_id"],
                       "peer_region": cleaned["region"]}
        else:
            values |= {k: cleaned[k] for k in validation.AZURE_FIELDS}
        peering = Peering(organization=principal.organization, deployment=deployment, provider=provider, **values)
        peering.full_clean()
        peering.save()
        PeeringEvent.objects.create(organization=principal.organization, peering=peering, from_status="",
                                    to_status=P.PENDING, reason="requested", actor_label=principal.actor_label[:254],
                                    created_at=peering.created_at)
        _start_operation(principal, peering, "peering_create")
        audit_record(principal=principal, action="peering.create", target=peering,
                     changes={"deployment": deployment.id, "provider": provider, **values})
        _enqueue_converge(peering)
    return peering


def peering_retry(*, principal: Principal, peering: Peering) -> Peering:
    """Asks the cloud again for a failed peering (status ``pending``), with the same networks.

    Its range was freed when it failed, so it is checked again like a new request's. On AWS the worker finds a
    connection of the earlier attempt that is still alive by its tag and goes on with it instead of making a
    second one; on Azure creating our side is idempotent.
    """
    principal.require(Perm.DEPLOYMENTS_WRITE)
    with transaction.atomic():
        # The deployment first, like peering_create: the same lock orders both overlap checks.
        deployment = lock_row(Deployment.objects.select_related("region"), peering.deployment_id,
                              organization=principal.organization)
        peering = lock_row(Peering, peering.pk, organization=principal.organization)
        if peering.status != P.FAILED:
            raise errors.Conflict(f"Only a failed peering can be retried; this one is {peering.status}.")
        if deployment.status in CLOSED_DEPLOYMENT_STATES:
            raise errors.Conflict(f"The deployment is {deployment.status}; it cannot be peered.")
        network = ipaddress.ip_network(peering.cidr)
        for other in selectors.reserved_cidrs(deployment=deployment, exclude_id=peering.id):
            if network.overlaps(ipaddress.ip_network(other)):
                raise field_invalid("cidr", f"{peering.cidr} overlaps {other}, peered with this deployment since "
                                            f"this one failed; delete one of them.")
        if peering.provider == "aws":
            _check_region_routes(deployment, peering.cidr)
        if len(selectors.reserved_cidrs(deployment=deployment)) >= settings.PEERING_MAX_PER_DEPLOYMENT:
            raise errors.Conflict(f"A deployment can have at most {settings.PEERING_MAX_PER_DEPLOYMENT} peerings; "
                                  f"delete one first.")
        failure = peering.status_reason
        # What the failed attempt learnt from the cloud does not describe the new one.
        peering.cloud_id, peering.cloud_state = "", ""
        peering.requested_at = peering.expires_at = peering.last_polled_at = None
        peering.network_configured_at = peering.activated_at = None
        _start_operation(principal, peering, "peering_create")
        transition(peering, P.PENDING, reason="retried", actor_label=principal.actor_label,
                   details={"failure": failure})
        audit_record(principal=principal, action="peering.retry", target=peering, changes={"failure": failure})
        _enqueue_converge(peering)
    return peering


def _check_region_routes(deployment: Deployment, cidr: str) -> None:
    network = ipaddress.ip_network(cidr)
    for other in selectors.region_routed_cidrs(deployment=deployment):
        if network.overlaps(ipaddress.ip_network(other)):
            message = (f"{cidr} is already routed from this region's platform network for another peering; "
                       f"choose another range.")
            raise field_invalid("cidr", message)


def peering_delete(*, principal: Principal, peering: Peering) -> Peering:
    """Starts removing the peering (status ``deleting``). Idempotent: deleting again changes nothing."""
    principal.require(Perm.DEPLOYMENTS_WRITE)
    with transaction.atomic():
        peering = lock_row(Peering, peering.pk, organization=principal.organization)
        if peering.status in (P.DELETING, P.DELETED):
            return peering
        _start_operation(principal, peering, "peering_delete")
        transition(peering, P.DELETING, actor_label=principal.actor_label, reason="peering.delete")
        audit_record(principal=principal, action="peering.delete", target=peering)
        _enqueue_converge(peering)
    return peering


# --- operators --------------------------------------------------------------------------------------
def peering_force_converge(*, principal: Principal, peering: Peering) -> None:
    """Ops: drive the peering now instead of waiting for the next reconciler pass."""
    audit_record(principal=principal, action="peering.force_converge", target=peering)
    _enqueue_converge(peering)


def peering_play_customer_side(*, principal: Principal, peering: Peering) -> str:
    """Ops, simulated clouds only: do what the customer would (accept the AWS request / create the Azure
    reverse peering), so the whole flow can be tried locally."""
    if not settings.PEERING_SIMULATED_CUSTOMER:
        raise errors.Conflict("Playing the customer's side is only possible against the simulated clouds.")
    note = customer_side.play(peering)
    audit_record(principal=principal, action="peering.simulate_customer", target=peering, changes={"note": note})
    _enqueue_converge(peering)
    return note
