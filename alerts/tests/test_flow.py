"""Metrics from the simulated cluster through a rule to a firing incident and a resolve, delivered by the
notification tasks to a real SMTP sink, a local PagerDuty Events v2 stand-in and a webhook receiver that
verifies the Standard Webhooks signature."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from kubernetes import client as k8s_client

from alerts.evaluator import alerts_evaluate
from alerts.metrics import metrics_collect
from alerts.models import Alert, AlertChannel, MetricSample, Notification
from alerts.services.notifications import notifications_redrive
from alerts.services.sending import notification_attempt
from alerts.tests.factories import AlertChannelFactory, AlertRuleFactory
from alerts.tests.standins import Receiver, verify_standard_webhook
from controlplane.celery import app as celery_app
from deployments.models import Deployment
from deployments.tests.factories import DeploymentFactory
from k8s.simulator import SimulatedCluster
from projects.tests.factories import OrganizationFactory, make_api_key
from tests.support import eager_tasks

pytestmark = pytest.mark.django_db

ROUTING_KEY = "R0123456789abcdef0123456789ABCDE"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"






def test_simulator_metrics_fire_and_resolve_an_incident(make_client, smtp, django_capture_on_commit_callbacks):
    organization = OrganizationFactory()
    _, key = make_api_key(organization)
    api = make_client(key)
    deployment = DeploymentFactory(organization=organization)  # basic-1k: 1000 connections
    with SimulatedCluster(ready_delay_s=0.05, seed=5) as cluster, Receiver() as pagerduty, Receiver() as webhook, \
            override_settings(KUBERNETES_SIMULATOR_URL=cluster.url, OUTBOUND_HTTP_ALLOW_LOOPBACK=True,
                              PAGERDUTY_EVENTS_URL=pagerduty.url + "/v2/enqueue"), eager_tasks():
        k8s_client.CoreV1Api(cluster.api_client()).create_namespace(
            k8s_client.V1Namespace(metadata=k8s_client.V1ObjectMeta(name=deployment.namespace)))
        channels = [api.post("/api/v1/alert-channels", body, format="json").json()["id"] for body in (
            {"name": "mail", "type": "email", "config": {"recipients": ["oncall@example.com"]}},
            {"name": "pd", "type": "pagerduty", "config": {"routing_key": ROUTING_KEY}},
            {"name": "hook", "type": "webhook", "config": {"url": webhook.url + "/in", "secret": SECRET}},
        )]
        response = api.post("/api/v1/alert-rules", {
            "name": "busy", "project": deployment.project_id, "metric": "connections_pct", "operator": ">",
            "threshold": "80", "duration_s": 60, "severity": "critical", "channels": channels,
            "repeat_interval_s": 3600}, format="json")
        assert response.status_code == 201, response.json()
        rule_id = response.json()["id"]

        t0 = timezone.now().replace(microsecond=0)
        cluster.metrics.steer(deployment.namespace, {"connections": 900})
        for seconds in (0, 30):
            metrics_collect(now=t0 + timedelta(seconds=seconds))
            assert alerts_evaluate(now=t0 + timedelta(seconds=seconds))["fired"] == 0
        metrics_collect(now=t0 + timedelta(seconds=60))
        with django_capture_on_commit_callbacks(execute=True):
            assert alerts_evaluate(now=t0 + timedelta(seconds=60))["fired"] == 1
            # Idempotent: the same instant again changes nothing.
            assert alerts_evaluate(now=t0 + timedelta(seconds=60)) == {"rules": 1, "fired": 0, "resolved": 0,
                                                                       "renotified": 0}
        (alert,) = api.get("/api/v1/alerts", {"state": "firing"}).json()["results"]
        assert (alert["rule"], alert["deployment"], alert["value"]) == (rule_id, deployment.id, 90.0)

        (rcpts, mail), = smtp.messages
        assert rcpts == ["oncall@example.com"] and "busy" in mail["Subject"] and "CRITICAL" in mail["Subject"]
        (trigger,) = pagerduty.json_bodies()
        assert trigger["routing_key"] == ROUTING_KEY and trigger["event_action"] == "trigger"
        assert trigger["dedup_key"] == f"mqcloud-{alert['id']}"
        assert trigger["payload"]["severity"] == "critical" and trigger["payload"]["source"] == deployment.id
        assert "connections_pct" in trigger["payload"]["summary"]
        fired = verify_standard_webhook(webhook.requests[0], SECRET)
        assert fired["type"] == "alert.firing" and fired["alert"]["id"] == alert["id"] and fired["value"] == 90.0

        metrics_collect(now=t0 + timedelta(seconds=90))
        with django_capture_on_commit_callbacks(execute=True):
            assert alerts_evaluate(now=t0 + timedelta(seconds=90))["renotified"] == 0
        assert len(pagerduty.requests) == 1

        cluster.metrics.steer(deployment.namespace, {"connections": 500})
        for seconds in (120, 150):  # clear, but not for long enough yet (flapping is damped)
            metrics_collect(now=t0 + timedelta(seconds=seconds))
            assert alerts_evaluate(now=t0 + timedelta(seconds=seconds))["resolved"] == 0
        metrics_collect(now=t0 + timedelta(seconds=180))
        with django_capture_on_commit_callbacks(execute=True):
            assert alerts_evaluate(now=t0 + timedelta(seconds=180))["resolved"] == 1

    body = api.get(f"/api/v1/alerts/{alert['id']}").json()
    assert body["state"] == "resolved" and body["resolved_at"] and body["value"] == 50.0
    resolve = pagerduty.json_bodies()[1]
    assert resolve["event_action"] == "resolve" and resolve["dedup_key"] == trigger["dedup_key"]
    resolved = verify_standard_webhook(webhook.requests[1], SECRET)
    assert resolved["type"] == "alert.resolved"
    assert webhook.requests[0]["headers"]["webhook-id"] != webhook.requests[1]["headers"]["webhook-id"]
    assert len(smtp.messages) == 2 and "resolved" in smtp.messages[1][1]["Subject"]
    log = api.get("/api/v1/notifications", {"alert": alert["id"]}).json()["results"]
    assert sorted((n["kind"], n["status"]) for n in log) == [("resolve", "delivered")] * 3 + [
        ("trigger", "delivered")] * 3


def _samples(deployment, values, start, step=30):
    MetricSample.objects.bulk_create([
        MetricSample(organization_id=deployment.organization_id, deployment=deployment, metric="connections_pct",
                     value=v, at=start + timedelta(seconds=step * i)) for i, v in enumerate(values)])


def test_condition_must_hold_for_the_whole_duration_and_repeat_interval_applies(django_capture_on_commit_callbacks):
    deployment = DeploymentFactory()
    channel = AlertChannelFactory(organization=deployment.organization)
    rule = AlertRuleFactory(organization=deployment.organization, project=deployment.project, duration_s=60,
                            repeat_interval_s=120, threshold=80)
    rule.channels.set([channel])
    t0 = timezone.now().replace(microsecond=0)
    _samples(deployment, [90, 70, 90, 90], t0)  # the dip at +30 restarts the clock
    with django_capture_on_commit_callbacks():
        assert alerts_evaluate(now=t0 + timedelta(seconds=90))["fired"] == 0
        _samples(deployment, [95], t0 + timedelta(seconds=120))
        assert alerts_evaluate(now=t0 + timedelta(seconds=120))["fired"] == 1
        _samples(deployment, [95, 95, 95, 95], t0 + timedelta(seconds=150))
        assert alerts_evaluate(now=t0 + timedelta(seconds=180))["renotified"] == 0
        assert alerts_evaluate(now=t0 + timedelta(seconds=240))["renotified"] == 1
        assert alerts_evaluate(now=t0 + timedelta(seconds=240))["renotified"] == 0
    assert Notification.objects.filter(channel=channel, kind="trigger").count() == 2
    assert Alert.objects.get().started_at == t0 + timedelta(seconds=60)


def test_stopped_deployment_resolves_its_incident(django_capture_on_commit_callbacks):
    deployment = DeploymentFactory()
    rule = AlertRuleFactory(organization=deployment.organization, project=deployment.project, duration_s=0)
    t0 = timezone.now().replace(microsecond=0)
    _samples(deployment, [90], t0)
    with django_capture_on_commit_callbacks():
        assert alerts_evaluate(now=t0)["fired"] == 1
        deployment.status = "stopped"
        deployment.save(update_fields=["status"])
        assert alerts_evaluate(now=t0 + timedelta(seconds=300))["resolved"] == 1
    assert Alert.objects.get(rule=rule).state == "resolved"


def _firing_notification(channel):
    deployment = DeploymentFactory(organization=channel.organization)
    rule = AlertRuleFactory(organization=channel.organization, project=deployment.project, duration_s=0)
    rule.channels.set([channel])
    _samples(deployment, [99], timezone.now() - timedelta(seconds=1))
    alerts_evaluate()
    return Notification.objects.get(channel=channel, alert__isnull=False)


@override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True, NOTIFICATION_RETRY_SCHEDULE_S=[0, 0])
def test_webhook_500_is_retried_then_failed(django_capture_on_commit_callbacks):
    with Receiver(lambda r: (500, {}, b"down")) as receiver:
        channel = AlertChannelFactory(type="webhook", config={"url": receiver.url}, secret=SECRET)
        with eager_tasks(), django_capture_on_commit_callbacks(execute=True):
            notification = _firing_notification(channel)
    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.status_code) == ("failed", 3, 500)
    assert len(receiver.requests) == 3
    assert len({r["headers"]["webhook-id"] for r in receiver.requests}) == 1  # same message, retried


@override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True)
def test_429_honours_retry_after_and_410_disables_the_webhook(django_capture_on_commit_callbacks):
    answers = [(429, {"Retry-After": "120"}, b""), (410, {}, b"")]
    with Receiver(lambda r: answers.pop(0)) as receiver:
        channel = AlertChannelFactory(type="webhook", config={"url": receiver.url}, secret=SECRET)
        with django_capture_on_commit_callbacks():
            notification = _firing_notification(channel)
        delay = notification_attempt(notification_id=notification.id)
        assert delay == 120
        notification.refresh_from_db()
        assert notification.status == "pending" and notification.next_attempt_at > timezone.now()
        assert notification_attempt(notification_id=notification.id) is None
    notification.refresh_from_db()
    channel = AlertChannel.objects.get(pk=channel.pk)
    assert notification.status == "failed" and not channel.enabled and "410" in channel.disabled_reason
    assert notification_attempt(notification_id=notification.id) is None  # a duplicate task is a no-op


def test_stuck_pending_deliveries_are_redriven(django_capture_on_commit_callbacks):
    channel = AlertChannelFactory()
    with django_capture_on_commit_callbacks():
        notification = _firing_notification(channel)
    with django_capture_on_commit_callbacks() as callbacks:
        assert notifications_redrive(now=timezone.now() + timedelta(hours=1)) == 1
    assert len(callbacks) == 1
    assert Notification.objects.get(pk=notification.pk).status == "pending"


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_delivers_the_trigger():
    from celery.contrib.testing.worker import start_worker
    from django.db import connections

    deployment = DeploymentFactory()
    with Receiver() as receiver, override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True):
        channel = AlertChannelFactory(organization=deployment.organization, type="webhook",
                                      config={"url": receiver.url}, secret=SECRET)
        rule = AlertRuleFactory(organization=deployment.organization, project=deployment.project, duration_s=0)
        rule.channels.set([channel])
        _samples(deployment, [99], timezone.now() - timedelta(seconds=1))
        celery_app.control.purge()
        with start_worker(celery_app, perform_ping_check=False, pool="solo", shutdown_timeout=30):
            assert alerts_evaluate()["fired"] == 1
            deadline = timezone.now() + timedelta(seconds=30)
            while not Notification.objects.filter(status="delivered").exists() and timezone.now() < deadline:
                time.sleep(0.05)
        connections.close_all()
    assert Notification.objects.get().status == "delivered"
    assert verify_standard_webhook(receiver.requests[0], SECRET)["type"] == "alert.firing"


@override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True, PAGERDUTY_EVENTS_PER_MINUTE=2)
def test_pagerduty_rate_limit_per_key_defers_instead_of_sending(django_capture_on_commit_callbacks):
    with Receiver() as pagerduty, override_settings(PAGERDUTY_EVENTS_URL=pagerduty.url):
        channel = AlertChannelFactory(type="pagerduty", config={}, secret=ROUTING_KEY)
        for _ in range(2):
            Notification.objects.create(organization=channel.organization, channel=channel, kind="test",
                                        status="delivered", delivered_at=timezone.now(), payload={})
        with django_capture_on_commit_callbacks():
            notification = _firing_notification(channel)
        assert notification_attempt(notification_id=notification.id) == 15.0
    assert pagerduty.requests == []
    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.claimed_until) == ("pending", 0, None)


def test_deployment_failed_event_rule(django_capture_on_commit_callbacks):
    deployment = DeploymentFactory()
    channel = AlertChannelFactory(organization=deployment.organization)
    rule = AlertRuleFactory(organization=deployment.organization, project=deployment.project,
                            metric="deployment_failed", operator=">=", threshold=1, duration_s=0)
    rule.channels.set([channel])
    now = timezone.now()
    with django_capture_on_commit_callbacks():
        assert alerts_evaluate(now=now)["fired"] == 0
        Deployment.objects.filter(pk=deployment.pk).update(status="failed", status_reason="image pull failed",
                                                            status_changed_at=now)
        assert alerts_evaluate(now=now + timedelta(seconds=1))["fired"] == 1
        assert alerts_evaluate(now=now + timedelta(seconds=2))["fired"] == 0
        trigger = Notification.objects.get(kind="trigger")
        assert trigger.payload["deployment"]["status_reason"] == "image pull failed"
        Deployment.objects.filter(pk=deployment.pk).update(status="running", status_changed_at=now)
        assert alerts_evaluate(now=now + timedelta(seconds=3))["resolved"] == 1
    assert Alert.objects.get(rule=rule).state == "resolved"
    assert Notification.objects.filter(kind="resolve").count() == 1


def test_a_brief_dip_does_not_resolve(django_capture_on_commit_callbacks):
    deployment = DeploymentFactory()
    rule = AlertRuleFactory(organization=deployment.organization, project=deployment.project, duration_s=0)
    t0 = timezone.now().replace(microsecond=0)
    with django_capture_on_commit_callbacks(), override_settings(ALERTS_RESOLVE_AFTER_S=60):
        _samples(deployment, [90], t0)
        assert alerts_evaluate(now=t0)["fired"] == 1
        _samples(deployment, [50, 90, 50, 50, 50], t0 + timedelta(seconds=30))
        assert alerts_evaluate(now=t0 + timedelta(seconds=30))["resolved"] == 0
        assert alerts_evaluate(now=t0 + timedelta(seconds=60))["resolved"] == 0
        assert alerts_evaluate(now=t0 + timedelta(seconds=120))["resolved"] == 0
        assert alerts_evaluate(now=t0 + timedelta(seconds=150))["resolved"] == 1
    assert Alert.objects.filter(rule=rule).count() == 1
