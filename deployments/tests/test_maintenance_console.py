"""The console's maintenance window pages through Django's client: the card on the deployment page, the form's
errors next to their fields, exclusions, defer, the project's default, and read-only roles."""

from __future__ import annotations

import pytest
import time_machine

from deployments.models import MaintenanceExclusion, MaintenanceWindow
from deployments.tests.factories import DeploymentFactory
from projects.roles import Role
from projects.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

WINDOW = {"form": "window", "weekday": "sunday", "start_time": "02:30", "length_minutes": "120",
          "time_zone": "Europe/Berlin"}


@pytest.fixture
def owner():
    return MembershipFactory(role=Role.OWNER)


@pytest.fixture
def deployment(owner):
    return DeploymentFactory(organization=owner.organization)


def console_as(client, membership):
    client.force_login(membership.user)
    return client


@time_machine.travel("2027-03-19T12:00:00Z", tick=False)
def test_a_window_set_on_the_project_shows_on_the_deployment(client, owner, deployment):
    console = console_as(client, owner)
    page = console.get(f"/console/deployments/{deployment.id}").content.decode()
    assert "No window: platform maintenance may happen at any time." in page
    project_url = f"/console/projects/{deployment.project_id}/maintenance"
    assert console.post(project_url, WINDOW).status_code == 302
    page = console.get(f"/console/deployments/{deployment.id}").content.decode()
    assert "Every Sunday at 02:30 (Europe/Berlin) for 120 minutes, from the project." in page
    assert 'datetime="2027-03-21T01:30:00+00:00"' in page
    maintenance = console.get(f"/console/deployments/{deployment.id}/maintenance").content.decode()
    assert "inherited from the project" in maintenance
    assert "Sun 28 Mar 2027, 03:30–05:30 (UTC+0200)" in maintenance  # the skipped hour: 02:30 CET is 03:30 CEST
    assert f'/console/projects/{deployment.project_id}/maintenance' in console.get(
        f"/console/projects/{deployment.project_id}").content.decode()


def test_bad_values_come_back_next_to_their_fields(client, owner, deployment):
    console = console_as(client, owner)
    url = f"/console/deployments/{deployment.id}/maintenance"
    response = console.post(url, {**WINDOW, "start_time": "25:00", "length_minutes": "0", "time_zone": "Mars/Base"})
    assert response.status_code == 400
    page = response.content.decode()
    for field in ("start_time", "length_minutes", "time_zone"):
        assert f'id="id_{field}_error"' in page, field
    assert not MaintenanceWindow.objects.exists()
    assert console.post(url, {"form": "exclusion", "start_date": "2027-01-10", "end_date": "2027-01-01"}
                        ).status_code == 400
    assert console.post(url, {"form": "exclusion", "start_date": "2027-01-01", "end_date": "2027-01-10",
                              "reason": "stocktaking"}).status_code == 302
    exclusion = MaintenanceExclusion.objects.get()
    assert "stocktaking" in console.get(url).content.decode()
    assert console.post(url, {"form": "exclusion-delete", "exclusion": exclusion.id}).status_code == 302
    assert not MaintenanceExclusion.objects.exists()


def test_defer_and_back_to_the_projects_window(client, owner, deployment):
    console = console_as(client, owner)
    url = f"/console/deployments/{deployment.id}/maintenance"
    console.post(url, WINDOW)
    console.post(url, {"form": "defer"})
    assert "Deferred once" in console.get(url).content.decode()
    console.post(url, {"form": "window-delete"})
    assert "No window, here or on the project" in console.get(url).content.decode()


def test_a_viewer_reads_but_cannot_change(client, owner, deployment):
    viewer = MembershipFactory(organization=owner.organization, role=Role.VIEWER)
    console = console_as(client, viewer)
    url = f"/console/deployments/{deployment.id}/maintenance"
    page = console.get(url).content.decode()
    assert "Your role can view the window but not change it." in page
    assert console.post(url, WINDOW).status_code == 403
    assert not MaintenanceWindow.objects.exists()
