"""What an upgrade renders at each step, and which versions a deployment may go to. Read by provisioning's
``desired_cluster_spec`` (so the reconciler's repair renders the same thing the upgrade applies) and by the
upgrade's services."""

from __future__ import annotations

from dataclasses import dataclass

from deployments.upgrades.models import BrokerVersion, DeploymentUpgrade, version_key
from deployments.upgrades.models import BrokerVersionStatus as V
from deployments.upgrades.models import UpgradeStatus as U

#: The states in which the cluster is being changed by an upgrade (``scheduled`` ones have not touched it yet).
MOVING = (U.ROLLING, U.ROLLING_BACK)
OPEN = (U.SCHEDULED, *MOVING)


@dataclass(frozen=True)
class RolloutShape:
    """The StatefulSet an upgrade step renders: the image, the node count, and the partition (only pods at
    or above it take the new template, so the nodes change one at a time, highest ordinal first)."""

    image: str
    replicas: int | None
    surge_replicas: int | None
    partition: int
    #: The ordinal whose pod must run ``image`` and be Ready before the next step (None: a shrink step).
    node: int | None


def version_images() -> dict[str, str]:
    """Version → image, for every version in the catalog (a handful of rows)."""
    return dict(BrokerVersion.objects.values_list("version", "image"))


def moving_upgrades(*, deployment_ids: list[str]) -> dict[str, DeploymentUpgrade]:
    """The upgrade moving each deployment's nodes, if any: one query for any number of deployments."""
    return {upgrade.deployment_id: upgrade
            for upgrade in DeploymentUpgrade.objects.filter(deployment_id__in=deployment_ids, status__in=MOVING)}


def step_count(replicas: int) -> int:
    # One node: a surge node next to it, then the old one replaced, then back to one (as scaling does).
    return 3 if replicas == 1 else replicas


def rollout_shape(upgrade: DeploymentUpgrade, images: dict[str, str] | None = None) -> RolloutShape:
    images = images if images is not None else version_images()
    n = upgrade.replicas
    if upgrade.status == U.ROLLING_BACK:
        # Everything back on the previous image at once: the controller replaces the upgraded nodes (one at a
        # time, highest first), the stuck one deleted by the rollback step; a surge node goes away.
        return RolloutShape(images[upgrade.from_version], n, None, 0, None)
    image = images[upgrade.to_version]
    step = upgrade.step
    if n == 1:
        if step == 0:
            return RolloutShape(image, None, 2, 1, 1)  # the surge node, new image, next to the old one
        if step == 1:
            return RolloutShape(image, None, 2, 0, 0)  # the old node replaced
        return RolloutShape(image, 1, None, 0, None)  # back to one node
    ordinal = max(n - 1 - step, 0)
    return RolloutShape(image, n, None, ordinal, ordinal if step < n else None)


def upgrade_targets(current: str, versions: list[BrokerVersion]) -> list[BrokerVersion]:
    """The versions ``current`` may go to: newer, not deprecated, in the same major or the next one (a major
    is never skipped). Oldest first."""
    key = version_key(current)
    return sorted((v for v in versions if v.key > key and v.status != V.DEPRECATED and v.major in (key[0],
                                                                                                   key[0] + 1)),
                  key=lambda v: v.key)


def refusal(current: str, target: str, versions: list[BrokerVersion]) -> str | None:
    """Why ``current`` may not go to ``target`` (None: it may)."""
    by_version = {v.version: v for v in versions}
    wanted = by_version.get(target)
    if wanted is None:
        return f"EMQX {target} is not a version the platform offers."
    if target == current:
        return f"The deployment already runs EMQX {target}."
    if wanted.key < version_key(current):
        return f"EMQX {target} is older than {current}: downgrades are not supported."
    if wanted.status == V.DEPRECATED:
        return f"EMQX {target} is deprecated (end of support {wanted.end_of_support}); pick a supported version."
    if wanted.major > version_key(current)[0] + 1:
        return (f"EMQX {target} skips a major version; upgrade to the latest {version_key(current)[0] + 1}.x "
                f"first.")
    return None


def upgrade_blocks_operation(deployment_id: str) -> bool:
    """True while an upgrade is changing the deployment's nodes: no scale, stop or start meanwhile (409)."""
    return DeploymentUpgrade.objects.filter(deployment_id=deployment_id, status__in=MOVING).exists()
