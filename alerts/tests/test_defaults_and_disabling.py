"""Default rules created with each project (and the backfill), and channels disabled after days of failures."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from alerts.models import AlertChannel, AlertRule
from alerts.services.defaults import DEFAULT_RULES
from alerts.services.failing_channels import failing_channels_disable
from alerts.tests.factories import AlertChannelFactory, NotificationFactory
from projects.models import AuditEvent
from projects.roles import Role
from projects.tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory, make_api_key
from tests.support import eager_tasks

pytestmark = pytest.mark.django_db
PROJECT_KEYS = sorted(r["default_key"] for r in DEFAULT_RULES)


def test_signup_and_new_projects_get_default_rules_notifying_the_owners(client):
    response = client.post("/api/v1/signup", {"email": "Founder@Example.com", "password": "correct horse battery",
                                              "organization_name": "Acme", "site": "global", "country": "DE"},
                           content_type="application/json")
    assert response.status_code == 201, response.json()
    api_key = response.json()["api_key"]["key"]
    headers = {"HTTP_AUTHORIZATION": f"Bearer {api_key}"}
    (channel,) = client.get("/api/v1/alert-channels", **headers).json()["results"]
    assert channel["name"] == "Owners (email)" and channel["config"]["recipients"] == ["founder@example.com"]
    rules = client.get("/api/v1/alert-rules", **headers).json()["results"]
    assert sorted(r["metric"] for r in rules) == sorted(
        ["connections_pct", "deployment_failed", "peering_failed", "auth_failures_rate", "messages_dropped_rate",
         "payment_failed"])
    assert all(r["default"] and r["channels"] == [channel["id"]] and r["enabled"] for r in rules)
    busy = next(r for r in rules if r["metric"] == "connections_pct")
    assert (busy["operator"], busy["threshold"], busy["duration_s"], busy["severity"]) == (
        ">", "80.0000", 300, "warning")

    second = client.post("/api/v1/projects", {"name": "second"}, content_type="application/json", **headers).json()
    mine = client.get("/api/v1/alert-rules", {"project": second["id"]}, **headers).json()["results"]
    # The organization condition is not repeated per project; the owners channel is reused, not recreated.
    assert sorted(r["metric"] for r in mine) == sorted(
        ["connections_pct", "deployment_failed", "peering_failed", "auth_failures_rate", "messages_dropped_rate"])
    assert AlertChannel.objects.count() == 1 and all(r["channels"] == [channel["id"]] for r in mine)
    event = AuditEvent.objects.get(action="project.create", target_id=second["id"])
    assert sorted(event.changes["alert_rules"]["rules"].values()) == PROJECT_KEYS

    # Ordinary rules from then on: editable and deletable.
    response = client.patch(f"/api/v1/alert-rules/{busy['id']}", {"threshold": "90"},
                            content_type="application/json", **headers)
    assert response.status_code == 200 and response.json()["threshold"] == "90.0000"
    assert client.delete(f"/api/v1/alert-rules/{busy['id']}", **headers).status_code == 204


def test_an_organization_with_its_own_channels_gets_rules_without_a_channel(make_client):
    organization = OrganizationFactory()
    MembershipFactory(organization=organization, role=Role.OWNER)
    AlertChannelFactory(organization=organization, name="pager")
    _, secret = make_api_key(organization)
    project = make_client(secret).post("/api/v1/projects", {"name": "p"}, format="json").json()
    rules = AlertRule.objects.filter(project_id=project["id"])
    assert rules.count() == len(DEFAULT_RULES) + 1 and not any(r.channels.exists() for r in rules)
    assert AlertChannel.objects.filter(organization=organization).count() == 1  # no channel behind its back


def test_backfill_gives_old_projects_their_defaults_once():
    organization = OrganizationFactory()
    owner = MembershipFactory(organization=organization, role=Role.OWNER)
    old = [ProjectFactory(organization=organization) for _ in range(2)]  # factories skip the service
    call_command("alerts_backfill_default_rules", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert AlertRule.objects.filter(project__in=old).count() == 2 * len(DEFAULT_RULES) + 1
    assert AlertRule.objects.filter(metric="payment_failed").count() == 1
    channel = AlertChannel.objects.get(organization=organization, default_key="owners")
    assert channel.config["recipients"] == [owner.user.email]
    assert AuditEvent.objects.filter(action="alert_rule.defaults_create", actor_type="system").count() == 2
    call_command("alerts_backfill_default_rules", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert AlertRule.objects.filter(project__in=old).count() == 2 * len(DEFAULT_RULES) + 1


def _failing(channel, *, days_ago: float, status: str = "failed") -> None:
    notification = NotificationFactory(organization=channel.organization, channel=channel, kind="trigger",
                                       status=status, attempts=3, last_error="HTTP 500: down")
    type(notification).objects.filter(pk=notification.pk).update(
        created_at=timezone.now() - timedelta(days=days_ago))


@override_settings(ALERT_CHANNEL_DISABLE_AFTER_DAYS=5)
def test_channel_failing_for_days_is_disabled_and_owners_and_admins_are_told_once(
        smtp, django_capture_on_commit_callbacks):
    organization = OrganizationFactory(name="Acme")
    owner = MembershipFactory(organization=organization, role=Role.OWNER)
    admin = MembershipFactory(organization=organization, role=Role.ADMIN)
    MembershipFactory(organization=organization, role=Role.DEVELOPER)
    long_ago = timezone.now() - timedelta(days=30)
    broken = AlertChannelFactory(organization=organization, name="hook", type="webhook",
                                 config={"url": "https://hooks.example.com/in"}, enabled_since=long_ago)
    recovering = AlertChannelFactory(organization=organization, enabled_since=long_ago)
    young = AlertChannelFactory(organization=organization, enabled_since=long_ago)
    for days in (6, 3, 0.1):
        _failing(broken, days_ago=days)
        _failing(recovering, days_ago=days)
    _failing(recovering, days_ago=1, status="delivered")
    _failing(young, days_ago=4)

    with eager_tasks(), django_capture_on_commit_callbacks(execute=True):
        assert failing_channels_disable() == [broken.id]
    broken.refresh_from_db()
    assert not broken.enabled and "5 days" in broken.disabled_reason
    assert AlertChannel.objects.get(pk=recovering.pk).enabled and AlertChannel.objects.get(pk=young.pk).enabled
    assert AuditEvent.objects.filter(action="alert_channel.disable", target_id=broken.id).count() == 1

    (recipients, message), = smtp.messages
    assert sorted(recipients) == sorted([owner.user.email, admin.user.email])
    assert "hook" in message["Subject"] and "disabled" in message["Subject"]
    text, html = message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()
    assert "5 days" in text and "HTTP 500: down" in text and "/console/alerts/channels" in text
    assert "<a href=" in html and "hooks.example.com" in html

    with eager_tasks(), django_capture_on_commit_callbacks(execute=True):
        assert failing_channels_disable() == []  # told once
    assert len(smtp.messages) == 1

    # Re-enabling clears the reason and starts a fresh window: old failures do not disable it again.
    _, secret = make_api_key(organization)
    from rest_framework.test import APIClient

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    body = api.patch(f"/api/v1/alert-channels/{broken.id}", {"enabled": True}, format="json").json()
    assert body["enabled"] and body["disabled_reason"] == ""
    assert broken.id not in failing_channels_disable(now=timezone.now() + timedelta(days=4))
