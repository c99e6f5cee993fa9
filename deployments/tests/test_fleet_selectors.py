"""The fleet reads behind the ops overview: deployments by status, failed and stuck operations, stalled rolling
restarts (newest first)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import override_settings

from deployments import facade
from deployments.lifecycle import ROLLING_RESTART, record_operation
from deployments.tests.factories import DeploymentFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def test_status_counts_name_every_status_but_deleted_busiest_first():
    for status in ("running", "running", "running", "stopped", "failed", "deleted"):
        DeploymentFactory(status=status)
    counts = facade.deployment_status_counts()
    assert list(counts.items())[:3] == [("running", 3), ("stopped", 1), ("failed", 1)]
    assert counts["pending"] == 0 and "deleted" not in counts


@override_settings(DEPLOYMENT_OPERATION_TIMEOUT_SECONDS=900)
def test_failed_stuck_and_stalled_operations_newest_first():
    failed = DeploymentFactory(status="failed", status_reason="Kubernetes refused the change: quota",
                               status_changed_at=NOW - timedelta(hours=2))
    stuck = DeploymentFactory(status="scaling", status_changed_at=NOW - timedelta(minutes=40))
    DeploymentFactory(status="provisioning", status_changed_at=NOW - timedelta(minutes=3))  # still in time
    DeploymentFactory(status="running", status_changed_at=NOW - timedelta(days=3))
    restarting = DeploymentFactory(status="running")
    with time_machine.travel(NOW - timedelta(minutes=30), tick=False):
        record_operation(restarting, operation=ROLLING_RESTART, phase="started", reason="Rolling restart")
    with time_machine.travel(NOW - timedelta(minutes=10), tick=False):
        record_operation(restarting, operation=ROLLING_RESTART, phase="stalled", reason="not done: 1/3 ready")
    recovered = DeploymentFactory(status="running")
    with time_machine.travel(NOW - timedelta(minutes=20), tick=False):
        record_operation(recovered, operation=ROLLING_RESTART, phase="stalled", reason="not done")
    with time_machine.travel(NOW - timedelta(minutes=5), tick=False):
        record_operation(recovered, operation=ROLLING_RESTART, phase="finished", reason="done")

    issues = facade.operations_needing_attention(now=NOW)
    assert [(i.kind, i.deployment_id) for i in issues] == [
        ("restart stalled", restarting.id), ("stuck", stuck.id), ("failed", failed.id)]
    assert issues[0].detail == "not done: 1/3 ready"
    assert issues[1].detail == "scaling for 40 min"
    assert issues[2].detail == "Kubernetes refused the change: quota"
    assert facade.operations_needing_attention(now=NOW, limit=1) == issues[:1]
