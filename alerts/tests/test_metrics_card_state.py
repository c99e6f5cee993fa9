"""Issue 14, item 12: what the metrics card may say about the latest sample (``selectors.metrics_card_state``),
and the card saying it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.models import MetricSample
from alerts.selectors import MetricsState, metrics_card_state
from deployments.models import DeploymentEvent, Spec
from deployments.tests.factories import DeploymentFactory
from tests.support import console_login as logged_in
from tests.support import console_page as page

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def _event(deployment, from_status: str, to_status: str, minutes_ago: int) -> None:
    DeploymentEvent.objects.create(organization_id=deployment.organization_id, deployment=deployment,
                                   from_status=from_status, to_status=to_status, spec_id=deployment.spec_id,
                                   created_at=NOW - timedelta(minutes=minutes_ago))


def _state(deployment, minutes_ago: int | None) -> str:
    latest = None if minutes_ago is None else NOW - timedelta(minutes=minutes_ago)
    return metrics_card_state(deployment=deployment, latest_at=latest)


def test_running_with_a_sample_since_it_started_is_live():
    deployment = DeploymentFactory(status="running")
    assert _state(deployment, 1) == MetricsState.LIVE  # no lifecycle recorded (made directly)
    _event(deployment, "provisioning", "running", 30)
    assert _state(deployment, 1) == MetricsState.LIVE
    assert _state(deployment, None) == MetricsState.WAITING


def test_after_a_scale_the_old_sample_waits_for_one_at_the_new_size():
    deployment = DeploymentFactory(status="scaling", target_spec=Spec.objects.get(id="basic-5k"))
    _event(deployment, "provisioning", "running", 60)
    assert _state(deployment, 2) == MetricsState.RESIZED  # while scaling, the sample is the old size's
    _event(deployment, "scaling", "running", 5)
    type(deployment).objects.filter(pk=deployment.pk).update(status="running")
    deployment.refresh_from_db()
    assert _state(deployment, 6) == MetricsState.RESIZED
    assert _state(deployment, 4) == MetricsState.LIVE


def test_stopped_is_never_live_and_a_restart_waits_for_a_new_sample():
    deployment = DeploymentFactory(status="stopped")
    assert _state(deployment, 30) == MetricsState.STOPPED
    assert _state(deployment, None) == MetricsState.NONE
    _event(deployment, "starting", "running", 5)
    type(deployment).objects.filter(pk=deployment.pk).update(status="running")
    deployment.refresh_from_db()
    assert _state(deployment, 30) == MetricsState.WAITING


def test_the_card_says_waiting_or_stopped_instead_of_the_old_numbers_and_dates_a_days_axis():
    client, member = logged_in()
    deployment = DeploymentFactory(organization=member.organization, status="running",
                                   spec=Spec.objects.get(id="basic-5k"))
    MetricSample.objects.bulk_create(
        MetricSample(organization=member.organization, deployment=deployment, metric=metric, value=value,
                     at=NOW - timedelta(minutes=10)) for metric, value in (("connections", 330.0),
                                                                           ("connections_pct", 33.0)))
    _event(deployment, "scaling", "running", 2)
    body = page(client, "deployment-metrics-card", deployment.id)
    assert "Waiting for the first sample at the new size (Basic 5K, 5000 connections)" in body
    assert "33%" not in body and "330" not in body.split("<figure")[0]
    type(deployment).objects.filter(pk=deployment.pk).update(status="stopped")
    body = page(client, "deployment-metrics-card", deployment.id)
    assert "Stopped: no live numbers" in body and "33%" not in body
    day = client.get(f"/console/deployments/{deployment.id}/metrics-card", {"range": "24h"}).content.decode()
    start, end = (label.split("<")[0] for label in day.split('class="chart-axis">')[-2:])
    assert start.startswith((NOW - timedelta(hours=24)).strftime("%-d %b ")) and end.startswith(NOW.strftime("%-d %b "))
