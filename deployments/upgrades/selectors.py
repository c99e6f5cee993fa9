"""Reads of versions and upgrades. Deployments come already scoped to the principal (the API's tenancy base,
``deployments.selectors``)."""

from __future__ import annotations

from controlplane import errors
from deployments.models import Deployment
from deployments.upgrades.models import BrokerVersion, DeploymentUpgrade
from deployments.upgrades.plan import upgrade_targets


def targets_of(*, deployment: Deployment) -> list[BrokerVersion]:
    """The versions the deployment may be upgraded to, oldest first."""
    return upgrade_targets(deployment.broker_version, list(BrokerVersion.objects.all()))


def version_get(*, version: str) -> BrokerVersion | None:
    return BrokerVersion.objects.filter(pk=version).first()


def latest_upgrade(*, deployment: Deployment) -> DeploymentUpgrade | None:
    return DeploymentUpgrade.objects.filter(deployment=deployment).order_by("-created_at", "-id").first()


def latest_upgrade_get(*, deployment: Deployment) -> DeploymentUpgrade:
    upgrade = latest_upgrade(deployment=deployment)
    if upgrade is None:
        raise errors.NotFound("The deployment was never upgraded.")
    return upgrade
