"""Retention of metric samples."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from alerts.models import MetricSample


# --- metrics retention -----------------------------------------------------------------------------------------
def metric_samples_purge(*, now: datetime | None = None) -> int:
    """Deletes samples older than the retention limit; returns how many went."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.METRICS_RETENTION_DAYS)
    deleted, _ = MetricSample.objects.filter(at__lt=cutoff).delete()
    return deleted
