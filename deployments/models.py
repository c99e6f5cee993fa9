"""Catalog (regions, specs, prices), deployments and their lifecycle events."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from controlplane.crypto import EncryptedTextField
from controlplane.ids import PrefixedIdField


class Tier(models.TextChoices):
    BASIC = "basic", "Basic"
    PROFESSIONAL = "professional", "Professional"
    FLAGSHIP = "flagship", "Flagship"


class Provider(models.TextChoices):
    AWS = "aws", "AWS"
    AZURE = "azure", "Azure"


class Region(models.Model):
    """A cloud region with one Kubernetes cluster; loaded from ``deployments/data/catalog.json``."""

    id = models.CharField(primary_key=True, max_length=64)
    provider = models.CharField(max_length=8, choices=Provider.choices)
    code = models.CharField(max_length=64)
    name = models.CharField(max_length=100)
    tiers = models.JSONField(default=list)
    sites = models.JSONField(default=list)
    active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class Spec(models.Model):
    """A deployment size: what it can carry and what it costs; loaded from the catalog file."""

    id = models.CharField(primary_key=True, max_length=64)
    tier = models.CharField(max_length=16, choices=Tier.choices)
    name = models.CharField(max_length=100)
    max_connections = models.PositiveIntegerField()
    max_messages_per_second = models.PositiveIntegerField()
    replicas = models.PositiveSmallIntegerField()
    cpu_millicores = models.PositiveIntegerField()
    memory_mib = models.PositiveIntegerField()
    active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class SpecPrice(models.Model):
    """A spec's prices in one currency. Money is Decimal, in the currency's major unit."""

    spec = models.ForeignKey(Spec, on_delete=models.CASCADE, related_name="prices")
    currency = models.CharField(max_length=3)
    hourly = models.DecimalField(max_digits=12, decimal_places=4)
    annual = models.DecimalField(max_digits=14, decimal_places=2)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["spec", "currency"], name="one_price_per_spec_currency")]

    def __str__(self) -> str:
        return f"{self.spec_id} {self.currency} {self.hourly}/h"


class DeploymentStatus(models.TextChoices):
    PENDING = "pending"
    PROVISIONING = "provisioning"
    RUNNING = "running"
    SCALING = "scaling"
    STOPPING = "stopping"
    STOPPED = "stopped"
    STARTING = "starting"
    DELETING = "deleting"
    DELETED = "deleted"
    FAILED = "failed"


class Deployment(models.Model):
    """An MQTT broker cluster (EMQX) in one region, sized by a spec, living in its own Kubernetes namespace.

    ``status`` only changes through ``deployments.lifecycle.transition`` so that every change is a
    :class:`DeploymentEvent` (billing meters and the audit log read those).
    """

    id = PrefixedIdField(prefix="dep")
    organization = models.ForeignKey("projects.Organization", on_delete=models.PROTECT, related_name="deployments")
    project = models.ForeignKey("projects.Project", on_delete=models.PROTECT, related_name="deployments")
    name = models.CharField(max_length=40)
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+")
    spec = models.ForeignKey(Spec, on_delete=models.PROTECT, related_name="+", help_text="the size now running")
    # While scaling: the size being rolled out; equal to ``spec`` otherwise.
    target_spec = models.ForeignKey(Spec, on_delete=models.PROTECT, related_name="+")
    tier = models.CharField(max_length=16, choices=Tier.choices)
    status = models.CharField(max_length=16, choices=DeploymentStatus.choices, default=DeploymentStatus.PENDING)
    status_reason = models.CharField(max_length=500, blank=True)
    # The operation that failed, so "retry" knows what to re-drive.
    failed_operation = models.CharField(max_length=16, blank=True)
    deletion_protection = models.BooleanField(default=False)
    endpoints = models.JSONField(default=dict, blank=True)
    # Where a multi-step operation (a single node's surge resize) is, so a restarted worker resumes it.
    rollout_step = models.PositiveSmallIntegerField(default=0)
    # Bootstrap secrets of the broker cluster: stable for its life, encrypted at rest.
    node_cookie = EncryptedTextField()
    dashboard_password = EncryptedTextField()
    # Bumped whenever the desired Kubernetes state changes; the reconciler compares it with what it applied.
    desired_generation = models.PositiveIntegerField(default=1)
    applied_generation = models.PositiveIntegerField(default=0)
    status_changed_at = models.DateTimeField(default=timezone.now)
    last_reconciled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # Names are unique per project among deployments that still exist.
            models.UniqueConstraint(fields=["project", "name"], condition=~models.Q(status="deleted"),
                                    name="deployment_name_unique_per_project"),
        ]
        indexes = [
            models.Index(fields=["organization", "-created_at"]),
            models.Index(fields=["status", "status_changed_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"

    @property
    def namespace(self) -> str:
        """The Kubernetes namespace: DNS-safe, stable, and free of the customer's chosen name."""
        return f"mq-{self.id.removeprefix('dep_')}"


class DeploymentEvent(models.Model):
    """One lifecycle transition. Append-only; ``spec`` is the size in force from this moment."""

    id = PrefixedIdField(prefix="evt")
    organization = models.ForeignKey("projects.Organization", on_delete=models.PROTECT, related_name="+")
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(max_length=16, choices=DeploymentStatus.choices, blank=True)
    to_status = models.CharField(max_length=16, choices=DeploymentStatus.choices)
    spec = models.ForeignKey(Spec, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=500, blank=True)
    actor_label = models.CharField(max_length=254, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["deployment", "created_at"])]

    def __str__(self) -> str:
        return f"{self.deployment_id}: {self.from_status or '∅'} → {self.to_status}"
