"""Models of maintenance windows and of the platform's own maintenance (``deployments.maintenance``): part of
the deployments app (imported at the end of ``deployments.models``), kept apart by concern."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from controlplane.ids import PrefixedIdField


class Weekday(models.IntegerChoices):
    MONDAY = 0, "Monday"
    TUESDAY = 1, "Tuesday"
    WEDNESDAY = 2, "Wednesday"
    THURSDAY = 3, "Thursday"
    FRIDAY = 4, "Friday"
    SATURDAY = 5, "Saturday"
    SUNDAY = 6, "Sunday"


def _one_owner(name: str) -> models.CheckConstraint:
    """Exactly one of ``project`` and ``deployment``: a row belongs to a project (the default its deployments
    inherit) or to one deployment, never both."""
    return models.CheckConstraint(
        condition=(models.Q(project__isnull=False, deployment__isnull=True)
                   | models.Q(project__isnull=True, deployment__isnull=False)), name=name)


class MaintenanceWindow(models.Model):
    """When the platform may disrupt a deployment: every ``weekday`` at ``start_time`` local time in
    ``time_zone`` for ``length_minutes``. A project's window is the default of its deployments without one
    (``deployments.maintenance.schedule`` computes the occurrences)."""

    id = PrefixedIdField(prefix="mnw")
    organization = models.ForeignKey("projects.Organization", on_delete=models.CASCADE, related_name="+")
    project = models.OneToOneField("projects.Project", on_delete=models.CASCADE, null=True, blank=True,
                                   related_name="maintenance_window")
    deployment = models.OneToOneField("deployments.Deployment", on_delete=models.CASCADE, null=True, blank=True,
                                      related_name="maintenance_window")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    start_time = models.TimeField()
    length_minutes = models.PositiveSmallIntegerField()
    time_zone = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [_one_owner("maintenance_window_one_owner")]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.start_time:%H:%M} {self.time_zone} ({self.length_minutes} min)"


class MaintenanceExclusion(models.Model):
    """Whole days (``start_date`` to ``end_date``, both included, in the window's time zone) when no window of
    the project or deployment opens, e.g. a retail freeze."""

    id = PrefixedIdField(prefix="mex")
    organization = models.ForeignKey("projects.Organization", on_delete=models.CASCADE, related_name="+")
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, null=True, blank=True,
                                related_name="maintenance_exclusions")
    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, null=True, blank=True,
                                   related_name="maintenance_exclusions")
    start_date = models.DateField()
    end_date = models.DateField()
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [_one_owner("maintenance_exclusion_one_owner")]
        ordering = ["start_date", "id"]

    def __str__(self) -> str:
        return f"{self.start_date} to {self.end_date}: {self.reason}"


class MaintenanceDeferral(models.Model):
    """"Defer once": the deployment's occurrence starting at ``occurrence_start`` is skipped. Kept per deployment
    whether its window is its own or inherited; an occurrence that no longer exists (the window moved) skips
    nothing."""

    deployment = models.OneToOneField("deployments.Deployment", on_delete=models.CASCADE, primary_key=True,
                                      related_name="maintenance_deferral")
    occurrence_start = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    def __str__(self) -> str:
        return f"{self.deployment_id} skips {self.occurrence_start:%Y-%m-%d %H:%M}Z"


class PlannedMaintenanceKind(models.TextChoices):
    CERTIFICATE_ROTATION = "certificate_rotation", "Certificate rotation"
    BROKER_UPGRADE = "broker_upgrade", "Broker upgrade"


class PlannedMaintenanceStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"  # planned into a window occurrence, not yet announced
    ANNOUNCED = "announced", "Announced"  # people and channels told
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class PlannedMaintenance(models.Model):
    """Maintenance the platform starts itself (a certificate rotation that restarts the brokers, a forced upgrade
    of a deprecated version): planned into an occurrence of the deployment's maintenance window, announced
    ahead, started only inside that occurrence (``deployments.maintenance.planned``). ``history`` records each
    transition: ``[{"status", "at", "note"}]``."""

    id = PrefixedIdField(prefix="pmt")
    organization = models.ForeignKey("projects.Organization", on_delete=models.CASCADE, related_name="+")
    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE,
                                   related_name="planned_maintenance")
    kind = models.CharField(max_length=32, choices=PlannedMaintenanceKind.choices)
    summary = models.CharField(max_length=300)
    details = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=PlannedMaintenanceStatus.choices,
                              default=PlannedMaintenanceStatus.SCHEDULED)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    announce_at = models.DateTimeField()
    # The latest start that still keeps the promise (e.g. before the certificate expires); past it the work runs
    # at once whatever the window, and the announcement said so.
    must_start_by = models.DateTimeField(null=True, blank=True)
    announced_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    requested_by = models.CharField(max_length=254, blank=True)  # an operator's email, or "platform"
    history = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(
            fields=["deployment", "kind"], condition=models.Q(status__in=["scheduled", "announced", "running"]),
            name="one_open_planned_maintenance_per_kind")]
        indexes = [models.Index(fields=["status", "window_start"]), models.Index(fields=["organization", "status"])]

    def __str__(self) -> str:
        return f"{self.kind} of {self.deployment_id} at {self.window_start:%Y-%m-%d %H:%M}Z ({self.status})"
