"""Dispatch of one converge step to the provider's worker, and what the reconciler re-drives.

Transient cloud errors propagate (the Celery task retries them with backoff); permanent ones move the
peering to ``failed`` with the cloud's message.
"""

from __future__ import annotations

import logging

from django.utils import timezone

from controlplane.workers import Step
from deployments.models import DeploymentStatus, Peering, Provider
from deployments.models import PeeringStatus as P
from deployments.peering import aws, azure
from deployments.peering.lifecycle import TRANSITIONAL
from deployments.peering.steps import CloudError, advance

logger = logging.getLogger(__name__)

DRIVERS = {Provider.AWS: aws.step, Provider.AZURE: azure.step}


def peering_converge_once(peering_id: str) -> Step:
    """One step of the peering through its provider's worker (the ``peering_converge`` task calls it)."""
    peering = Peering.objects.select_related("deployment__region").filter(pk=peering_id).first()
    if peering is None or peering.status in (P.DELETED, P.FAILED, P.EXPIRED):
        return Step(again_in=None, note="settled")
    try:
        return DRIVERS[peering.provider](peering)
    except CloudError as exc:
        if exc.transient:
            raise
        logger.warning("peering %s: permanent cloud error: %s", peering.id, exc.message)
        if peering.status == P.DELETING:
            # Keep trying to delete (the reconciler re-drives it), but show why it is stuck.
            Peering.objects.filter(pk=peering.pk, status=P.DELETING).update(status_reason=exc.message[:500],
                                                                            updated_at=timezone.now())
            return Step(again_in=None, note="delete refused")
        advance(peering, P.FAILED, reason=exc.message, details={"code": exc.code})
        return Step(again_in=None, note="failed")


def peerings_to_drive() -> list[str]:
    """Transitional peerings, active ones (to check they still are), and peerings of deployments going away."""
    going = [DeploymentStatus.DELETING, DeploymentStatus.DELETED]
    orphaned = Peering.objects.filter(deployment__status__in=going).exclude(status__in=[P.DELETING, P.DELETED])
    for peering in orphaned:
        advance(peering, P.DELETING, reason="the deployment is being deleted")
    return list(Peering.objects.filter(status__in=[*TRANSITIONAL, P.ACTIVE]).values_list("id", flat=True))
