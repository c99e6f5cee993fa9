"""The alerting reads behind the ops overview: the rule evaluation's lag and the delivery failure rate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts import facade
from alerts.tests.factories import NotificationFactory
from controlplane.task_records import task_heartbeat_record

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def test_evaluation_lag_is_the_time_since_the_last_finished_run():
    assert facade.evaluation_lag_seconds(now=NOW) is None
    task_heartbeat_record(task_name="alerts.tasks.alerts_evaluate", now=NOW - timedelta(seconds=95))
    assert facade.evaluation_lag_seconds(now=NOW) == 95.0


def test_delivery_failure_rate_counts_finished_deliveries_of_the_window():
    for status in ("delivered", "delivered", "delivered", "failed", "pending"):
        NotificationFactory(status=status, created_at=NOW - timedelta(minutes=10))
    NotificationFactory(status="failed", created_at=NOW - timedelta(hours=2))  # outside the window
    stats = facade.delivery_stats(since=NOW - timedelta(hours=1))
    assert (stats.delivered, stats.failed, stats.pending) == (3, 1, 1)
    assert stats.failure_rate == 0.25
    assert facade.delivery_stats(since=NOW).failure_rate is None
