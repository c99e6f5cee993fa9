"""Lifecycle rules (peering_failed per deployment, payment_failed per organization) and the evaluator's cost."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts import delivery
from alerts.evaluator import alerts_evaluate
from alerts.models import Alert, MetricSample, Notification
from alerts.tests.factories import AlertChannelFactory, AlertFactory, AlertRuleFactory
from billing.models import BillingAccount
from deployments.models import Peering
from deployments.tests.factories import DeploymentFactory, PeeringFactory
from projects.tests.factories import OrganizationFactory, ProjectFactory, make_api_key

pytestmark = pytest.mark.django_db


def test_peering_failed_fires_per_deployment_and_resolves(django_capture_on_commit_callbacks):
    peering = PeeringFactory(status="active")
    deployment = peering.deployment
    healthy = DeploymentFactory(organization=deployment.organization, project=deployment.project, name="other")
    channel = AlertChannelFactory(organization=deployment.organization)
    rule = AlertRuleFactory(organization=deployment.organization, project=deployment.project,
                            metric="peering_failed", operator=">=", threshold=1, duration_s=0)
    rule.channels.set([channel])
    now = timezone.now()
    with django_capture_on_commit_callbacks():
        assert alerts_evaluate(now=now)["fired"] == 0
        Peering.objects.filter(pk=peering.pk).update(status="failed", status_changed_at=now)
        assert alerts_evaluate(now=now + timedelta(seconds=1))["fired"] == 1
        assert alerts_evaluate(now=now + timedelta(seconds=2))["fired"] == 0
        Peering.objects.filter(pk=peering.pk).update(status="active")
        assert alerts_evaluate(now=now + timedelta(seconds=3))["resolved"] == 1
    alert = Alert.objects.get(rule=rule)
    assert alert.deployment_id == deployment.id and alert.state == "resolved" and alert.started_at == now
    assert not Alert.objects.filter(deployment=healthy).exists()
    assert [n.kind for n in Notification.objects.order_by("created_at")] == ["trigger", "resolve"]


def test_payment_failed_is_one_organization_incident_without_deployment(
        make_client, django_capture_on_commit_callbacks):
    organization = OrganizationFactory()
    project = ProjectFactory(organization=organization)
    for name in ("a", "b", "c"):  # deployments do not multiply an organization condition
        DeploymentFactory(organization=organization, project=project, name=name)
    channel = AlertChannelFactory(organization=organization)
    rule = AlertRuleFactory(organization=organization, project=project, metric="payment_failed", operator=">=",
                            threshold=1, duration_s=0, severity="critical")
    rule.channels.set([channel])
    other = AlertRuleFactory(organization=OrganizationFactory(), metric="payment_failed", operator=">=", threshold=1,
                             duration_s=0)
    account = BillingAccount.objects.create(organization=organization)
    now = timezone.now()
    with django_capture_on_commit_callbacks():
        assert alerts_evaluate(now=now)["fired"] == 0
        BillingAccount.objects.filter(pk=account.pk).update(payment_failed_at=now)
        assert alerts_evaluate(now=now + timedelta(seconds=1))["fired"] == 1
        assert alerts_evaluate(now=now + timedelta(seconds=2))["fired"] == 0
    assert not Alert.objects.filter(rule=other).exists()

    _, secret = make_api_key(organization)
    (body,) = make_client(secret).get("/api/v1/alerts", {"rule": rule.id}).json()["results"]
    assert body["deployment"] is None and body["state"] == "firing"

    trigger = Notification.objects.get(kind="trigger")
    assert trigger.payload["deployment"] is None and organization.id in trigger.payload["summary"]
    assert "deployment" not in trigger.payload["links"]
    event = delivery.pagerduty_event(channel, trigger, action="trigger", dedup_key="k")
    assert event["payload"]["source"] == organization.id and event["payload"]["component"] == ""
    assert delivery.send_email(channel, trigger).delivered and "payment_failed" in mail.outbox[0].subject

    with django_capture_on_commit_callbacks():
        BillingAccount.objects.filter(pk=account.pk).update(payment_failed_at=None)
        assert alerts_evaluate(now=now + timedelta(seconds=3))["resolved"] == 1
    assert Notification.objects.get(kind="resolve").payload["deployment"] is None


def test_one_open_organization_incident_per_rule_is_a_constraint():
    rule = AlertRuleFactory(metric="payment_failed")
    AlertFactory(organization=rule.organization, rule=rule, deployment=None)
    with pytest.raises(IntegrityError), transaction.atomic():
        AlertFactory(organization=rule.organization, rule=rule, deployment=None)
    AlertFactory(organization=rule.organization, rule=rule, deployment=None, state="resolved")


def test_console_lists_an_organization_incident():
    from alerts.tests.test_console import logged_in, page

    client, member = logged_in()
    rule = AlertRuleFactory(organization=member.organization, metric="payment_failed", name="card declined")
    AlertFactory(organization=member.organization, rule=rule, deployment=None)
    body = page(client, "alerts")
    assert "card declined" in body and "Organization" in body


def _fleet(names: range, organization, project) -> None:
    now = timezone.now()
    for i in names:
        deployment = DeploymentFactory(organization=organization, project=project, name=f"d{i}")
        MetricSample.objects.bulk_create(
            MetricSample(organization=organization, deployment=deployment, metric="connections_pct",
                         value=95.0 if i % 2 else 10.0, at=now - timedelta(seconds=s)) for s in (0, 30, 60))


def test_evaluation_reads_a_fixed_number_of_queries_whatever_the_fleet(django_capture_on_commit_callbacks):
    organization = OrganizationFactory()
    project = ProjectFactory(organization=organization)
    for metric in ("connections_pct", "deployment_failed", "peering_failed", "payment_failed"):
        AlertRuleFactory(organization=organization, project=project, metric=metric, duration_s=0, threshold=80
                         if metric == "connections_pct" else 1, operator=">=")

    def steady_queries() -> int:
        with django_capture_on_commit_callbacks():
            alerts_evaluate()  # opens the incidents
            with CaptureQueriesContext(connection) as queries:
                alerts_evaluate()  # they stay open: values refreshed in one batch
        return len(queries)

    _fleet(range(3), organization, project)
    small = steady_queries()
    _fleet(range(3, 12), organization, project)
    assert steady_queries() == small <= 10


def test_an_organization_rule_takes_no_deployment(make_client):
    deployment = DeploymentFactory()
    _, secret = make_api_key(deployment.organization)
    api = make_client(secret)
    body = {"name": "card", "project": deployment.project_id, "metric": "payment_failed", "operator": ">=",
            "threshold": "1", "duration_s": 0}
    response = api.post("/api/v1/alert-rules", {**body, "deployment": deployment.id}, format="json")
    assert response.status_code == 400 and "deployment" in response.json()["errors"]
    response = api.post("/api/v1/alert-rules", body, format="json")
    assert response.status_code == 201 and response.json()["deployment"] is None
    response = api.patch(f"/api/v1/alert-rules/{response.json()['id']}", {"deployment": deployment.id}, format="json")
    assert response.status_code == 400


def test_an_incident_another_evaluator_opened_first_is_neither_duplicated_nor_notified_again(
        django_capture_on_commit_callbacks):
    from alerts.evaluator import _open

    existing = AlertFactory()
    channel = AlertChannelFactory(organization=existing.organization)
    existing.rule.channels.set([channel])
    fresh = AlertFactory.build(organization=existing.organization, rule=existing.rule,
                               deployment=DeploymentFactory(organization=existing.organization,
                                                            project=existing.rule.project, name="fresh"))
    racing = AlertFactory.build(organization=existing.organization, rule=existing.rule,
                                deployment=existing.deployment)
    with django_capture_on_commit_callbacks():
        assert _open([racing, fresh], timezone.now()) == 1
    assert Alert.objects.filter(rule=existing.rule, state="firing").count() == 2
    assert list(Notification.objects.values_list("alert_id", flat=True)) == [fresh.id]
