"""The alerts pages of the console, driven through Django's test client."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from alerts.models import AlertChannel, AlertRule, MetricSample, Notification
from alerts.tests.factories import AlertChannelFactory, AlertFactory, AlertRuleFactory, NotificationFactory
from alerts.tests.standins import Receiver, verify_standard_webhook
from deployments.tests.factories import DeploymentFactory
from projects.roles import Role
from projects.tests.factories import OrganizationFactory, ProjectFactory
from tests.support import console_login as logged_in
from tests.support import console_page as page
from tests.support import console_url as url

pytestmark = pytest.mark.django_db

PAGES = ("alerts", "alert-rules", "alert-channels", "alert-deliveries")
HTMX = {"HX-Request": "true"}


def test_nav_entry_and_empty_states():
    client, _ = logged_in()
    body = page(client, "alerts")
    assert ">Alerts<" in body.split('class="sidenav"')[1]
    assert "No incidents" in body
    assert "No alert rules yet" in page(client, "alert-rules")
    assert "No alert channels yet" in page(client, "alert-channels")
    assert "No deliveries yet" in page(client, "alert-deliveries")


def test_create_webhook_channel_and_send_a_test_to_a_local_receiver():
    client, member = logged_in()
    with Receiver() as receiver, override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True):
        response = client.post(url("alert-channel-create"), {
            "name": "hooks", "type": "webhook", "url": receiver.url + "/hook",
            "secret": "whsec_" + "A" * 32, "headers": "X-Team: ops"})
        assert response.status_code == 302, response.content[:800]
        channel = AlertChannel.objects.get(organization=member.organization)
        assert channel.config == {"url": receiver.url + "/hook"}
        body = page(client, "alert-channels")
        assert receiver.url in body and "whsec_" not in body and "X-Team" not in body
        assert "Send test" in body and "Never used" in body

        response = client.post(url("alert-channel-test", channel.id), headers=HTMX)
        assert response.status_code == 200
        outcome = response.content.decode()
        assert "Delivered" in outcome and "HTTP 202" in outcome
        assert "<html" not in outcome
        payload = verify_standard_webhook(receiver.requests[0], "whsec_" + "A" * 32)
        assert payload["test"] is True
        assert receiver.requests[0]["headers"]["x-team"] == "ops"

    body = page(client, "alert-channels")
    assert "Delivered" in body and "HTTP 202" in body
    log = page(client, "alert-deliveries")
    assert "hooks" in log and "Test" in log


def test_failed_test_send_shows_status_and_error():
    client, member = logged_in()
    with Receiver(lambda request: (500, {}, b"boom SECRET-BODY")) as receiver, \
            override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True):
        channel = AlertChannelFactory(organization=member.organization, type="webhook",
                                      config={"url": receiver.url}, secret="whsec_" + "B" * 32)
        outcome = client.post(url("alert-channel-test", channel.id), headers=HTMX).content.decode()
    assert "Failed" in outcome and "HTTP 500" in outcome and " ms" in outcome
    # What the endpoint answered stays with the endpoint: not on the page, not in the delivery log.
    assert "SECRET-BODY" not in outcome
    assert "SECRET-BODY" not in page(client, "alert-deliveries") + page(client, "alert-channels")


def test_edit_keeps_write_only_secret_when_blank():
    client, member = logged_in()
    channel = AlertChannelFactory(organization=member.organization, type="pagerduty", config={}, secret="a" * 32)
    body = page(client, "alert-channel-edit", channel.id)
    assert "a" * 32 not in body
    response = client.post(url("alert-channel-edit", channel.id),
                           {"name": "pd-renamed", "type": "pagerduty", "routing_key": "", "enabled": "on"})
    assert response.status_code == 302, response.content[:800]
    channel.refresh_from_db()
    assert channel.name == "pd-renamed" and channel.secret == "a" * 32


def test_invalid_channel_config_is_shown_on_the_form():
    client, _ = logged_in()
    response = client.post(url("alert-channel-create"), {"name": "mail", "type": "email", "recipients": "not-an-email"})
    assert response.status_code == 400
    assert "is not a valid email address" in response.content.decode()


def test_delete_channel():
    client, member = logged_in()
    channel = AlertChannelFactory(organization=member.organization)
    assert client.post(url("alert-channel-delete", channel.id)).status_code == 302
    assert not AlertChannel.objects.filter(pk=channel.id).exists()


def rule_data(project, **overrides) -> dict:
    return {"name": "busy", "project": project.id, "deployment": "", "metric": "connections_pct", "operator": ">",
            "threshold": "80", "duration_s": "300", "severity": "warning", "repeat_interval_s": "3600",
            "enabled": "on"} | overrides


def test_rule_create_and_service_error_on_the_form():
    client, member = logged_in()
    project, other_project = (ProjectFactory(organization=member.organization) for _ in range(2))
    deployment = DeploymentFactory(organization=member.organization, project=other_project)
    channel = AlertChannelFactory(organization=member.organization)

    response = client.post(url("alert-rule-create"), rule_data(project, deployment=deployment.id))
    assert response.status_code == 400
    assert "The deployment is not in the rule&#x27;s project." in response.content.decode()
    assert not AlertRule.objects.exists()

    response = client.post(url("alert-rule-create"), rule_data(project, channels=[channel.id]))
    assert response.status_code == 302, response.content[:800]
    rule = AlertRule.objects.get()
    assert [c.id for c in rule.channels.all()] == [channel.id]
    assert "busy" in page(client, "alert-rules")

    response = client.post(url("alert-rule-edit", rule.id), rule_data(project, threshold="90", enabled=""))
    assert response.status_code == 302, response.content[:800]
    rule.refresh_from_db()
    assert rule.threshold == 90 and not rule.enabled


def test_incidents_firing_first_and_delivery_log():
    client, member = logged_in()
    now = timezone.now()
    AlertFactory(organization=member.organization, state="resolved", started_at=now, resolved_at=now, value=10)
    firing = AlertFactory(organization=member.organization, started_at=now - timedelta(hours=2), value=93.5)
    NotificationFactory(organization=member.organization, status="failed", attempts=3, last_error="timed out")
    body = page(client, "alerts")
    assert body.index('status-revoked">Firing') < body.index('status-active">Resolved')
    assert firing.deployment.name in body and "93.5" in body
    log = page(client, "alert-deliveries")
    assert "timed out" in log and "Failed" in log


def test_viewer_sees_no_write_controls_and_gets_403_on_post():
    client, member = logged_in(Role.VIEWER)
    channel = AlertChannelFactory(organization=member.organization)
    rule = AlertRuleFactory(organization=member.organization)
    channels = page(client, "alert-channels")
    assert "Send test" not in channels and "Add channel" not in channels
    assert "Create rule" not in page(client, "alert-rules")
    for name, args in (("alert-channel-create", ()), ("alert-channel-test", (channel.id,)),
                       ("alert-channel-delete", (channel.id,)), ("alert-rule-create", ()),
                       ("alert-rule-edit", (rule.id,)), ("alert-rule-delete", (rule.id,))):
        assert client.post(url(name, *args), {}).status_code == 403, name
    assert AlertChannel.objects.filter(pk=channel.id).exists() and not Notification.objects.exists()


def test_other_organizations_objects_are_404():
    client, _ = logged_in()
    other = OrganizationFactory()
    channel = AlertChannelFactory(organization=other)
    rule = AlertRuleFactory(organization=other)
    deployment = DeploymentFactory(organization=other)
    for name, args in (("alert-channel-edit", (channel.id,)), ("alert-rule-edit", (rule.id,)),
                       ("deployment-metrics-card", (deployment.id,))):
        assert client.get(url(name, *args)).status_code == 404, name
    for name, args in (("alert-channel-test", (channel.id,)), ("alert-channel-delete", (channel.id,)),
                       ("alert-rule-delete", (rule.id,))):
        assert client.post(url(name, *args)).status_code == 404, name
    assert AlertChannel.objects.filter(pk=channel.id).exists()


def test_metrics_card_on_the_deployment_page():
    client, member = logged_in()
    deployment = DeploymentFactory(organization=member.organization)
    assert url("deployment-metrics-card", deployment.id) in page(client, "deployment-detail", deployment.id)
    assert "No samples yet — metrics arrive every 30 s" in page(client, "deployment-metrics-card", deployment.id)
    type(deployment).objects.filter(pk=deployment.pk).update(status="stopped")
    assert "it is stopped now" in page(client, "deployment-metrics-card", deployment.id)
    type(deployment).objects.filter(pk=deployment.pk).update(status="running")
    assert "No samples yet — metrics arrive every 30 s" in page(client, "deployment-metrics-card", deployment.id)
    now = timezone.now().replace(microsecond=0)
    for minutes, connections in ((30, 100.0), (20, 300.0), (0, 450.0)):
        at = now - timedelta(minutes=minutes)
        values = {"connections": connections, "connections_pct": 45.0, "messages_in_rate": 12.5,
                  "messages_out_rate": 7.0}
        MetricSample.objects.bulk_create([MetricSample(organization=member.organization, deployment=deployment,
                                                       metric=metric, value=value, at=at)
                                          for metric, value in values.items()])
    body = page(client, "deployment-metrics-card", deployment.id)
    assert "450" in body and "45.0%" in body and "12.5" in body and "7.0" in body
    assert 'aria-valuenow="45"' in body and "45.0% of the spec" in body  # the gauge
    assert body.count("<polyline") == 3 and "<script" not in body  # connections; messages in and out
    assert "Connections, last 1h" in body and 'hx-trigger="every 30s"' in body and "Spec maximum" not in body
    six = client.get(url("deployment-metrics-card", deployment.id), {"range": "6h"}, headers=HTMX).content.decode()
    assert "Connections, last 6h" in six and 'aria-current="true">6h<' in six
    assert "Messages per second, last 6h" in six


def test_rule_editor_previews_the_metric_of_its_deployment():
    client, member = logged_in()
    deployment = DeploymentFactory(organization=member.organization)
    rule = AlertRuleFactory(organization=member.organization, project=deployment.project, deployment=deployment)
    assert "No samples of this metric" in page(client, "alert-rule-edit", rule.id)
    now = timezone.now().replace(microsecond=0)
    MetricSample.objects.bulk_create([
        MetricSample(organization=member.organization, deployment=deployment, metric="connections_pct", value=value,
                     at=now - timedelta(minutes=minutes)) for minutes, value in ((40, 20.0), (10, 60.0), (0, 85.5))])
    body = page(client, "alert-rule-edit", rule.id)
    assert "85.5" in body and "<polyline" in body


def test_disabled_channel_shows_why_and_can_be_re_enabled():
    client, member = logged_in()
    channel = AlertChannelFactory(organization=member.organization, enabled=False,
                                  disabled_reason="Every delivery failed for 5 days.")
    body = page(client, "alert-channels")
    assert "Every delivery failed for 5 days." in body and url("alert-channel-enable", channel.id) in body
    response = client.post(url("alert-channel-enable", channel.id))
    assert response.status_code == 302
    channel.refresh_from_db()
    assert channel.enabled and channel.disabled_reason == ""
    assert url("alert-channel-enable", channel.id) not in page(client, "alert-channels")


def test_rule_editor_previews_a_project_rule_on_a_running_deployment_and_explains_conditions():
    client, member = logged_in()
    deployment = DeploymentFactory(organization=member.organization)
    rule = AlertRuleFactory(organization=member.organization, project=deployment.project)
    MetricSample.objects.create(organization=member.organization, deployment=deployment, metric="connections_pct",
                                value=42.5, at=timezone.now())
    body = page(client, "alert-rule-edit", rule.id)
    assert "42.5" in body and "(one of the project's deployments)" in body
    condition = AlertRuleFactory(organization=member.organization, project=deployment.project,
                                 metric="payment_failed")
    assert "is a condition, not a sampled metric" in page(client, "alert-rule-edit", condition.id)
