"""Operations (issue 18): every asynchronous request (``op_…``), its steps, and its recorded transitions."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from controlplane.ids import PrefixedIdField
from deployments.models import Deployment


class OperationType(models.TextChoices):
    CREATE = "create"
    SCALE = "scale"
    STOP = "stop"
    START = "start"
    DELETE = "delete"
    RETRY = "retry"
    UPGRADE = "upgrade"
    PEERING_CREATE = "peering_create"
    PEERING_DELETE = "peering_delete"
    SWITCH_TO_ANNUAL = "switch_to_annual"


class OperationStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Operation(models.Model):
    """One asynchronous request (``op_…``): its steps, where it is, how it ended.

    ``status`` only changes through ``deployments.operations.services`` so that every change is an
    :class:`OperationEvent`. ``steps`` is the plan, each ``{name, status, started_at, finished_at, cancellable}``;
    ``current_step`` is where a worker that died resumes (the step is recorded before the work of it is done).
    """

    id = PrefixedIdField(prefix="op")
    organization = models.ForeignKey("projects.Organization", on_delete=models.PROTECT, related_name="+")
    project = models.ForeignKey("projects.Project", on_delete=models.PROTECT, related_name="+", null=True,
                                blank=True)
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="operations", null=True,
                                   blank=True)
    #: The peering a peering operation drives (a plain id: peerings live in their own package).
    peering_id = models.CharField(max_length=32, blank=True, default="")
    type = models.CharField(max_length=24, choices=OperationType.choices)
    status = models.CharField(max_length=16, choices=OperationStatus.choices, default=OperationStatus.PENDING)
    steps = models.JSONField(default=list, blank=True)
    current_step = models.CharField(max_length=40, blank=True, default="")
    error = models.CharField(max_length=500, blank=True, default="")
    requested_by = models.CharField(max_length=254, blank=True, default="")
    #: Free details of the request (e.g. the target version of an upgrade, the spec of a scale).
    params = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["organization", "-created_at"]),
            models.Index(fields=["deployment", "status"]),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.type} ({self.status})"


class OperationEvent(models.Model):
    """One transition of an operation, or a step begun. Append-only."""

    id = PrefixedIdField(prefix="opevt")
    operation = models.ForeignKey(Operation, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(max_length=16, choices=OperationStatus.choices, blank=True)
    to_status = models.CharField(max_length=16, choices=OperationStatus.choices)
    step = models.CharField(max_length=40, blank=True, default="")
    note = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
