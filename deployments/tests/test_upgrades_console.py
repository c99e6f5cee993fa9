"""The console's upgrade: the version on the deployment page, the form listing the targets, the confirmation
page (now or at the next window) and the request through the service."""

from __future__ import annotations

import pytest
import time_machine

from deployments.models import MaintenanceWindow
from deployments.tests.factories import DeploymentFactory
from deployments.upgrades.models import DeploymentUpgrade
from projects.models import AuditEvent
from projects.roles import Role
from tests.support import console_login as logged_in
from tests.support import console_page as page
from tests.support import console_url as url

pytestmark = pytest.mark.django_db


def test_the_page_shows_the_version_and_offers_the_targets():
    client, member = logged_in()
    deployment = DeploymentFactory(organization=member.organization)
    body = page(client, "deployment-detail", deployment.id)
    assert "EMQX version" in body and "5.8.6" in body
    upgrade_block = body.split('id="upgrade"')[1].split("<h3>Scale</h3>")[0]
    assert 'value="5.9.1"' in upgrade_block and 'value="6.0.0"' in upgrade_block and 'value="5.8.5"' not in body
    assert 'value="next_window"' in upgrade_block


def test_confirm_then_upgrade_now_is_audited(django_capture_on_commit_callbacks):
    client, member = logged_in()
    deployment = DeploymentFactory(organization=member.organization)
    confirm = client.get(url("deployment-upgrade", deployment.id), {"version": "5.9.1", "when": "now"}
                         ).content.decode()
    assert "Upgrade " + deployment.name + " to EMQX 5.9.1?" in confirm and "returns to 5.8.6" in confirm
    with django_capture_on_commit_callbacks(execute=False):
        body = client.post(url("deployment-upgrade", deployment.id), {"version": "5.9.1", "when": "now"},
                           follow=True).content.decode()
    assert "Upgrading " + deployment.name + " to EMQX 5.9.1" in body
    assert DeploymentUpgrade.objects.get(deployment=deployment).status == "scheduled"
    assert AuditEvent.objects.filter(action="deployment.upgrade").exists()
    assert "EMQX 5.9.1: scheduled" in page(client, "deployment-detail", deployment.id)


def test_a_refused_version_and_a_missing_window_come_back_as_messages():
    client, member = logged_in()
    deployment = DeploymentFactory(organization=member.organization)
    body = client.get(url("deployment-upgrade", deployment.id), {"version": "5.8.5", "when": "now"},
                      follow=True).content.decode()
    assert "5.8.5" in body and "not one of the available choices" in body
    body = client.get(url("deployment-upgrade", deployment.id), {"version": "5.9.1", "when": "next_window"},
                      follow=True).content.decode()
    assert "no maintenance window" in body


@time_machine.travel("2027-03-19T12:00:00Z", tick=False)
def test_next_window_is_scheduled_at_its_next_occurrence(django_capture_on_commit_callbacks):
    client, member = logged_in()
    deployment = DeploymentFactory(organization=member.organization)
    MaintenanceWindow.objects.create(organization=member.organization, deployment=deployment, weekday=6,
                                     start_time="02:30", length_minutes=60, time_zone="UTC")
    with django_capture_on_commit_callbacks(execute=False):
        body = client.post(url("deployment-upgrade", deployment.id), {"version": "6.0.0", "when": "next_window"},
                           follow=True).content.decode()
    assert "scheduled for 2027-03-21 02:30 UTC" in body


def test_a_viewer_sees_the_version_but_no_upgrade_form():
    client, member = logged_in(role=Role.VIEWER)
    deployment = DeploymentFactory(organization=member.organization)
    body = page(client, "deployment-detail", deployment.id)
    assert "5.8.6" in body and 'id="upgrade"' not in body
    assert client.post(url("deployment-upgrade", deployment.id), {"version": "5.9.1", "when": "now"}
                       ).status_code == 403
