"""EMQX versions (the catalog ops keep in the admin) and upgrades of deployments to them. Registered through
``deployments.models``, which re-exports them."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from controlplane.ids import PrefixedIdField

#: The version new deployments get, and the one deployments made before versions were recorded run.
DEFAULT_BROKER_VERSION = "5.8.6"


def default_broker_version() -> str:
    return DEFAULT_BROKER_VERSION


class BrokerVersionStatus(models.TextChoices):
    CURRENT = "current", "Current"
    SUPPORTED = "supported", "Supported"
    DEPRECATED = "deprecated", "Deprecated"


class BrokerVersion(models.Model):
    """An EMQX version the platform runs; loaded from the catalog file, edited by ops in the admin. Exactly one is
    ``current`` (what new deployments get); ``deprecated`` ones are no upgrade target and end on
    ``end_of_support``."""

    version = models.CharField(primary_key=True, max_length=32)
    image = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=BrokerVersionStatus.choices)
    end_of_support = models.DateField(null=True, blank=True)

    def __str__(self) -> str:
        return f"EMQX {self.version} ({self.status})"

    @property
    def key(self) -> tuple[int, ...]:
        return version_key(self.version)

    @property
    def major(self) -> int:
        return self.key[0]


def version_key(version: str) -> tuple[int, ...]:
    """``"5.10.1"`` → ``(5, 10, 1)``: versions compare by number, not as text."""
    return tuple(int(part) for part in version.split("."))


class UpgradeStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"  # when=next_window: waiting for the window to open
    ROLLING = "rolling", "Rolling"  # nodes are being replaced one at a time
    ROLLING_BACK = "rolling_back", "Rolling back"  # a node did not come back: the previous image is restored
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"  # rolled back; ``error`` says why
    CANCELED = "canceled", "Canceled"  # the deployment stopped running (deleted) before the upgrade ran


class UpgradeWhen(models.TextChoices):
    NOW = "now", "Now"
    NEXT_WINDOW = "next_window", "Next maintenance window"


class DeploymentUpgrade(models.Model):
    """A change of a running deployment's EMQX version, node by node (``deployments.upgrades``): its own state
    machine, each transition and node step recorded as a ``DeploymentEvent`` (operation ``upgrade``), the step it
    is at kept here so a worker that dies resumes from it."""

    id = PrefixedIdField(prefix="upg")
    organization = models.ForeignKey("projects.Organization", on_delete=models.CASCADE, related_name="+")
    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="upgrades")
    from_version = models.CharField(max_length=32)
    to_version = models.CharField(max_length=32)
    when = models.CharField(max_length=16, choices=UpgradeWhen.choices)
    scheduled_for = models.DateTimeField()
    status = models.CharField(max_length=16, choices=UpgradeStatus.choices, default=UpgradeStatus.SCHEDULED)
    #: Nodes when it started, and the step reached (``deployments.upgrades.plan``): a worker resumes here.
    replicas = models.PositiveSmallIntegerField(default=0)
    step = models.PositiveSmallIntegerField(default=0)
    step_started_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    #: The ``Operation`` (``op_…``) that mirrors this upgrade for the API's and the console's operation views.
    operation_id = models.CharField(max_length=32, blank=True, default="")
    actor_label = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # One upgrade at a time per deployment: the database settles two concurrent requests.
            models.UniqueConstraint(fields=["deployment"], condition=models.Q(status__in=["scheduled", "rolling",
                                                                                         "rolling_back"]),
                                    name="deployment_upgrade_one_open"),
        ]
        indexes = [models.Index(fields=["status", "scheduled_for"])]

    def __str__(self) -> str:
        return f"{self.deployment_id}: {self.from_version} -> {self.to_version} ({self.status})"
