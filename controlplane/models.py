"""Platform-wide records that belong to no single app."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from controlplane.crypto import EncryptedTextField


class IdempotencyRecord(models.Model):
    """The first response to a POST with an ``Idempotency-Key``, replayed for repeats of that request.

    The body is encrypted because some first responses carry a secret (a new API key's value).
    """

    scope = models.CharField(max_length=100, help_text="organization and credential that sent the key")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=512)
    request_fingerprint = models.CharField(max_length=64)
    # Null while the first request is still being handled.
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = EncryptedTextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="idempotency_key_unique_per_scope")]

    def __str__(self) -> str:
        return f"{self.scope} {self.key} → {self.status_code}"


class RateCounter(models.Model):
    """Attempts counted against one limit (a login address, a client IP, a credential) in its current window.

    The database store of ``controlplane.ratelimit``, for installations without Redis. Written only by one
    atomic upsert there; rows whose window has closed are reset by the next attempt and purged hourly.
    """

    key = models.CharField(primary_key=True, max_length=200)
    count = models.PositiveIntegerField(default=0)
    # Unix time (seconds) the window closes: a plain number compares the same way on SQLite and PostgreSQL
    # inside the raw upsert, where Django's datetime adaptation does not apply.
    window_ends = models.FloatField(db_index=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.count}"


class TaskFailure(models.Model):
    """A Celery task that failed for good: it raised, and any retries it was allowed were used up.

    Written by the ``task_failure`` signal handler (``controlplane.task_records``), with the task's registered
    name and arguments (tasks take ids, never secrets), so an operator can re-enqueue it from the ops overview.
    Bounded: rows older than ``TASK_FAILURE_RETENTION`` and beyond the newest ``TASK_FAILURES_KEPT`` are pruned
    on every insert.
    """

    task_name = models.CharField(max_length=200, db_index=True)
    task_id = models.CharField(max_length=64, blank=True)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    exception_type = models.CharField(max_length=200)
    message = models.CharField(max_length=1000, blank=True)
    traceback = models.TextField(blank=True)
    failed_at = models.DateTimeField(default=timezone.now, db_index=True)
    retried_at = models.DateTimeField(null=True, blank=True)
    retried_by = models.CharField(max_length=254, blank=True)

    def __str__(self) -> str:
        return f"{self.task_name} failed at {self.failed_at:%Y-%m-%d %H:%M:%S}: {self.exception_type}"


class TaskHeartbeat(models.Model):
    """When a periodic (beat) task last finished without an error: how the ops overview tells a job that stopped
    running, or runs late (the alert evaluation's lag), from one that merely has nothing to do."""

    task_name = models.CharField(primary_key=True, max_length=200)
    last_succeeded_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.task_name} at {self.last_succeeded_at:%Y-%m-%d %H:%M:%S}"


class PendingTask(models.Model):
    """A task a committed change asked for while the broker (Redis) could not take it: kept here, in the same
    database as the change, and sent by the ``pending_tasks_send`` beat job once the broker is back
    (``controlplane.queue``). Tasks take ids, never secrets, and are idempotent, so a send that happens twice
    (the job died between sending and deleting the row) does no harm."""

    task_name = models.CharField(max_length=200)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    error = models.CharField(max_length=500, blank=True)

    def __str__(self) -> str:
        return f"{self.task_name} kept at {self.created_at:%Y-%m-%d %H:%M:%S}"
