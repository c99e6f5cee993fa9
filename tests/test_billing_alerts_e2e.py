"""End to end across billing and alerts: what a customer sees when a payment fails, a budget is crossed, or
dunning stops their deployments.

Nothing is mocked: the real ``stripe`` library over HTTP to localstripe, Stripe webhooks signed as Stripe
signs them, alert deliveries over real HTTP to a receiver that verifies Standard Webhooks signatures and
over SMTP to a local sink, a real Celery worker on Redis where the brief asks for one, and the simulated
Kubernetes cluster for deployments.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connections
from django.test import Client, override_settings
from django.utils import timezone

from alerts.evaluator import alerts_evaluate
from alerts.models import Alert, AlertChannel, AlertRule, Notification
from alerts.tests.standins import Receiver, verify_standard_webhook
from billing import tasks as billing_tasks
from billing.models import BillingAccount, Budget, BudgetCrossing, Invoice, InvoiceStatus, PaymentStatus
from billing.services.budgets import budgets_evaluate
from billing.services.dunning import dunning_run
from billing.services.payments import _payment_begin, invoice_collect
from billing.tests.factories import BillingAccountFactory
from billing.tests.stripe_standins import stripe_event
from billing.tests.test_stripe import DECLINED_ON_CHARGE, bind_card, deliver, intent_of, open_invoice
from controlplane.celery import app as celery_app
from deployments.models import Deployment, DeploymentStatus
from deployments.tests.factories import DeploymentFactory
from projects.models import Organization
from tests.support import eager_tasks, running_worker, simulated_cluster, wait_for

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PASSWORD = "a-long-enough-passphrase"


# --- helpers -----------------------------------------------------------------------------------------------
def signup(anon, make_client, email: str, name: str = "Acme"):
    """A customer signs up: organization, owner, first project (with its default rules) and an owner key."""
    response = anon.post("/api/v1/signup", {"email": email, "password": PASSWORD, "organization_name": name,
                                            "site": "global", "country": "de"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    api = make_client(body["api_key"]["key"])
    api.organization = Organization.objects.get(pk=body["organization"]["id"])
    api.project_id = api.get("/api/v1/projects").json()["results"][0]["id"]
    return api


def default_rule(api, metric: str) -> dict:
    rules = [r for r in api.get("/api/v1/alert-rules", {"limit": 200}).json()["results"] if r["metric"] == metric]
    assert len(rules) == 1, rules
    return rules[0]


def webhook_channel(api, receiver: Receiver, name: str = "hook") -> str:
    response = api.post("/api/v1/alert-channels", {"name": name, "type": "webhook",
                                                   "config": {"url": receiver.url + "/in", "secret": SECRET}},
                        format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


# --- 1. a failed payment opens one organization incident; paying resolves it ---------------------------------
@pytest.mark.django_db
def test_payment_failed_alerts_through_webhook_and_owners_email_and_resolves_when_paid(
        anon, make_client, stripe_on, smtp, django_capture_on_commit_callbacks):
    api = signup(anon, make_client, "ada@example.com")
    org = api.organization
    rule = default_rule(api, "payment_failed")
    assert rule["deployment"] is None and rule["severity"] == "critical"
    owners = AlertChannel.objects.get(organization=org, default_key="owners")
    assert rule["channels"] == [owners.id]  # the default "Owners (email)" channel is on it from the start

    with Receiver() as receiver, override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True), eager_tasks():
        hook = webhook_channel(api, receiver)
        patched = api.patch(f"/api/v1/alert-rules/{rule['id']}", {"channels": [owners.id, hook]}, format="json")
        assert patched.status_code == 200, patched.content
        assert sorted(patched.json()["channels"]) == sorted([owners.id, hook])

        bind_card(api, card=DECLINED_ON_CHARGE)
        invoice = open_invoice(org, total="119.00")
        t0 = timezone.now().replace(microsecond=0)
        with django_capture_on_commit_callbacks(execute=True):
            assert billing_tasks.invoice_collect(invoice.pk) == PaymentStatus.FAILED
        account = BillingAccount.objects.get(organization=org)
        assert account.payment_failed_at is not None and account.dunning_warned_at is not None
        warned = len(smtp.messages)  # the dunning warning, mailed to the owner

        with django_capture_on_commit_callbacks(execute=True):
            stats = alerts_evaluate(now=t0 + timedelta(seconds=5))
            assert stats["fired"] == 1
            # Idempotent: the same pass again, and a later one before the repeat interval, change nothing.
            assert alerts_evaluate(now=t0 + timedelta(seconds=5))["fired"] == 0
            assert alerts_evaluate(now=t0 + timedelta(seconds=65)) == {
                "rules": stats["rules"], "fired": 0, "resolved": 0, "renotified": 0}
        (alert,) = Alert.objects.filter(organization=org)
        assert alert.deployment_id is None and alert.state == "firing" and alert.rule_id == rule["id"]
        (listed,) = api.get("/api/v1/alerts", {"state": "firing"}).json()["results"]
        assert listed["id"] == alert.id and listed["deployment"] is None

        (request,) = receiver.requests
        fired = verify_standard_webhook(request, SECRET)
        assert fired["type"] == "alert.firing" and fired["alert"]["id"] == alert.id
        assert fired["deployment"] is None and fired["rule"]["metric"] == "payment_failed"
        assert fired["organization"]["id"] == org.id
        (rcpts, mail), = smtp.messages[warned:]
        assert rcpts == ["ada@example.com"] and "payment_failed" in mail["Subject"]

        # The customer binds a working card (the console's confirm flow): the debt is collected at once.
        with django_capture_on_commit_callbacks(execute=True):
            bind_card(api, card="pm_card_visa")
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.PAID
        paid = invoice.payments.get(status=PaymentStatus.SUCCEEDED)
        # Stripe's signed webhook for the same payment then arrives: handled, changes nothing more.
        response = deliver(Client(), stripe_event("payment_intent.succeeded", intent_of(paid)))
        assert response.status_code == 200 and response.json()["duplicate"] is False
        account.refresh_from_db()
        assert account.payment_failed_at is None and account.suspended_at is None

        with django_capture_on_commit_callbacks(execute=True):
            assert alerts_evaluate(now=t0 + timedelta(seconds=125))["resolved"] == 1
            assert alerts_evaluate(now=t0 + timedelta(seconds=126)) == {
                "rules": stats["rules"], "fired": 0, "resolved": 0, "renotified": 0}
        assert api.get(f"/api/v1/alerts/{alert.id}").json()["state"] == "resolved"
        assert len(receiver.requests) == 2
        resolved = verify_standard_webhook(receiver.requests[1], SECRET)
        assert resolved["type"] == "alert.resolved" and resolved["alert"]["id"] == alert.id
        assert any("resolved" in m["Subject"] and "payment_failed" in m["Subject"] for _, m in smtp.messages[warned:])

    log = api.get("/api/v1/notifications", {"alert": alert.id}).json()["results"]
    assert sorted((n["kind"], n["status"]) for n in log) == [("resolve", "delivered")] * 2 + [
        ("trigger", "delivered")] * 2


# --- 2. a budget crossed by the hourly metering, delivered by a real worker --------------------------------
@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_metering_crosses_a_budget_and_a_real_worker_delivers_one_signed_notice(anon, make_client):
    from celery.contrib.testing.worker import start_worker

    from billing.tests.factories import record_event

    api = signup(anon, make_client, "grace@example.com", name="Hopper")
    org = api.organization
    now = timezone.now()
    if now.day == 1 and now.hour < 3:
        pytest.skip("the two metered hours must be in this month")
    started = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    deployment = DeploymentFactory(organization=org, project_id=api.project_id, created_at=started)
    record_event(deployment, "running", started)  # two closed hours of basic-1k: 0.36 USD
    assert not celery_app.conf.task_always_eager
    with Receiver() as receiver, override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True):
        hook = webhook_channel(api, receiver)
        created = api.post("/api/v1/budgets", {"amount": "0.45", "channels": [hook]}, format="json")
        assert created.status_code == 201, created.content
        budget_id = created.json()["id"]
        celery_app.control.purge()
        try:
            with start_worker(celery_app, perform_ping_check=False, pool="solo", shutdown_timeout=30):
                billing_tasks.usage_meter_recent.delay()  # the beat job, run by the worker
                wait_for(lambda: Notification.objects.filter(status="delivered").exists(), "the notice")
                # The next runs meter the same hours again: no second notice (anything new would be
                # enqueued to the worker, which is given time to deliver it).
                assert billing_tasks.usage_meter_recent() == 0
                assert billing_tasks.budgets_evaluate() == 0
                time.sleep(1.0)
        finally:
            connections.close_all()
    assert api.get(f"/api/v1/budgets/{budget_id}").json()["spent"] == "0.36"
    assert list(BudgetCrossing.objects.filter(budget_id=budget_id).order_by("threshold")
                .values_list("threshold", "notified")) == [(50, False), (80, True)]
    (request,) = receiver.requests
    notice = verify_standard_webhook(request, SECRET)
    assert notice["type"] == "budget.threshold_crossed" and notice["threshold"] == 80
    assert notice["severity"] == "warning" and notice["budget"]["id"] == budget_id
    assert notice["organization"]["id"] == org.id and (notice["spent"], notice["amount"]) == ("0.36", "0.45")
    (logged,) = api.get("/api/v1/notifications").json()["results"]
    assert (logged["kind"], logged["status"], logged["channel"], logged["alert"]) == ("notice", "delivered", hook,
                                                                                      None)
    assert api.get("/api/v1/notifications", {"kind": "notice"}).json()["results"][0]["id"] == logged["id"]


# --- 3. dunning stops deployments in the cluster, never deletes them; alerts see it --------------------------
@pytest.fixture
def cluster():
    with simulated_cluster(seed=11) as simulated:
        yield simulated


@pytest.fixture
def worker(cluster):
    with running_worker():
        yield


def wait_status(api, deployment_id: str, status: str) -> dict:
    def current():
        body = api.get(f"/api/v1/deployments/{deployment_id}").json()
        assert body.get("status") != "failed", body
        return body if body.get("status") == status else None

    return wait_for(current, f"{deployment_id} to be {status}")


def create_deployment(api, name: str):
    return api.post("/api/v1/deployments", {"project": api.project_id, "name": name, "region": "aws-us-east-1",
                                            "spec": "basic-1k"}, format="json")


def assert_conflict(response, match: str = "unpaid") -> None:
    assert response.status_code == 409, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 409 and match in body["detail"]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_dunning_stops_deployments_in_the_cluster_refuses_starts_and_alerts_until_paid(
        anon, make_client, stripe_on, cluster, worker):
    from kubernetes import client as k8s_client

    api = signup(anon, make_client, "linus@example.com", name="Torvalds")
    org = api.organization
    created = create_deployment(api, "fleet")
    assert created.status_code == 202, created.content
    deployment_id = created.json()["id"]
    wait_status(api, deployment_id, "running")
    namespace = Deployment.objects.get(pk=deployment_id).namespace

    bind_card(api, card=DECLINED_ON_CHARGE)
    invoice = open_invoice(org, total="119.00")
    assert invoice_collect(invoice_id=invoice.pk).status == PaymentStatus.FAILED
    account = api.get("/api/v1/billing/account").json()
    assert account["payment_failed_at"] and account["deployments_stop_on"] and account["suspended_at"] is None
    t0 = timezone.now()
    assert alerts_evaluate(now=t0)["fired"] == 1
    (incident,) = api.get("/api/v1/alerts", {"state": "firing"}).json()["results"]
    assert incident["deployment"] is None and incident["rule"] == default_rule(api, "payment_failed")["id"]

    # Within the grace period nothing is stopped; after it the beat job stops what runs.
    assert dunning_run(now=t0 + timedelta(days=13))["stopped"] == 0
    assert dunning_run(now=t0 + timedelta(days=14, minutes=1))["stopped"] == 1
    wait_status(api, deployment_id, "stopped")
    sts = k8s_client.AppsV1Api(cluster.api_client()).read_namespaced_stateful_set("emqx", namespace)
    assert sts.spec.replicas == 0  # stopped, its namespace and objects kept
    assert Deployment.objects.filter(organization=org).exclude(status=DeploymentStatus.STOPPED).count() == 0
    assert api.get("/api/v1/billing/account").json()["suspended_at"] is not None

    assert_conflict(create_deployment(api, "another"))
    assert_conflict(api.post(f"/api/v1/deployments/{deployment_id}/start"))
    assert Deployment.objects.filter(organization=org).count() == 1

    # Alerts: still the one payment incident; a deployment stopped by dunning is not a failed deployment.
    stats = alerts_evaluate(now=timezone.now())
    assert (stats["fired"], stats["resolved"]) == (0, 0)
    assert [a["id"] for a in api.get("/api/v1/alerts").json()["results"]] == [incident["id"]]

    # Paid with a new card (the confirm flow enqueues the collection; the worker charges it).
    bind_card(api, card="pm_card_visa")
    wait_for(lambda: Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.PAID, "the invoice to be paid")
    wait_for(lambda: BillingAccount.objects.get(organization=org).suspended_at is None, "dunning to clear")
    assert alerts_evaluate(now=timezone.now())["resolved"] == 1
    assert api.post(f"/api/v1/deployments/{deployment_id}/start").status_code == 202
    wait_status(api, deployment_id, "running")
    assert create_deployment(api, "another").status_code == 202


# --- 4. tenancy: another organization sees none of it ----------------------------------------------------------
@pytest.mark.django_db
def test_another_organization_never_sees_incidents_budgets_notifications_or_payment_state(
        anon, make_client, django_capture_on_commit_callbacks):
    first = signup(anon, make_client, "first@example.com", name="First")
    second = signup(anon, make_client, "second@example.com", name="Second")
    org = first.organization
    with Receiver() as receiver, override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True), eager_tasks():
        hook = webhook_channel(first, receiver)
        rule = default_rule(first, "payment_failed")
        assert first.patch(f"/api/v1/alert-rules/{rule['id']}", {"channels": [hook]},
                           format="json").status_code == 200
        budget = first.post("/api/v1/budgets", {"amount": "10", "channels": [hook]}, format="json").json()
        BillingAccountFactory(organization=org)
        BillingAccount.objects.filter(organization=org).update(payment_failed_at=timezone.now())
        with django_capture_on_commit_callbacks(execute=True):
            assert alerts_evaluate()["fired"] == 1
    (incident,) = first.get("/api/v1/alerts").json()["results"]
    (notification,) = first.get("/api/v1/notifications").json()["results"]
    assert first.get("/api/v1/billing/account").json()["payment_failed_at"] is not None

    # The second organization's own default payment rule exists, but nothing of the first is visible.
    assert default_rule(second, "payment_failed")["id"] != rule["id"]
    for path in ("/api/v1/alerts", "/api/v1/notifications", "/api/v1/budgets", "/api/v1/alert-channels"):
        listed = second.get(path).json()["results"]
        assert not {incident["id"], notification["id"], budget["id"], hook} & {item["id"] for item in listed}, path
    for path in (f"/api/v1/alerts/{incident['id']}", f"/api/v1/notifications/{notification['id']}",
                 f"/api/v1/budgets/{budget['id']}", f"/api/v1/alert-rules/{rule['id']}",
                 f"/api/v1/alert-channels/{hook}"):
        assert second.get(path).status_code == 404, path
    assert second.get("/api/v1/alerts", {"rule": rule["id"]}).json()["results"] == []
    assert second.patch(f"/api/v1/budgets/{budget['id']}", {"amount": "1"}, format="json").status_code == 404
    assert second.delete(f"/api/v1/budgets/{budget['id']}").status_code == 404
    assert second.patch(f"/api/v1/alert-rules/{rule['id']}", {"channels": []}, format="json").status_code == 404
    # Another organization's channel cannot be put on one's own budget or rule.
    refused = second.post("/api/v1/budgets", {"amount": "10", "channels": [hook]}, format="json")
    assert refused.status_code == 400 and "channels" in refused.json()["errors"]
    own_rule = default_rule(second, "payment_failed")
    assert second.patch(f"/api/v1/alert-rules/{own_rule['id']}", {"channels": [hook]},
                        format="json").status_code == 400
    account = second.get("/api/v1/billing/account").json()
    assert (account["payment_failed_at"], account["deployments_stop_on"], account["suspended_at"]) == (None,) * 3
    assert Budget.objects.get(pk=budget["id"]).amount == Decimal("10.00")


# --- 5. other seams ------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_payment_alerting_survives_deleting_the_project_that_holds_the_organization_rule(
        anon, make_client, django_capture_on_commit_callbacks):
    """The organization's ``payment_failed`` rule is stored on its first project; deleting that project must
    not silently end payment alerting for the whole organization."""
    api = signup(anon, make_client, "mary@example.com", name="Shelley")
    org = api.organization
    first_project = api.project_id
    with Receiver() as receiver, override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True), eager_tasks():
        hook = webhook_channel(api, receiver)
        rule = default_rule(api, "payment_failed")
        api.patch(f"/api/v1/alert-rules/{rule['id']}", {"channels": [hook]}, format="json")
        second_project = api.post("/api/v1/projects", {"name": "Second"}, format="json").json()["id"]
        assert len([r for r in api.get("/api/v1/alert-rules").json()["results"]
                    if r["metric"] == "payment_failed"]) == 1  # one per organization, not per project
        assert api.delete(f"/api/v1/projects/{first_project}").status_code == 204

        kept = default_rule(api, "payment_failed")
        assert (kept["id"], kept["project"], kept["channels"]) == (rule["id"], second_project, [hook])
        BillingAccountFactory(organization=org)
        BillingAccount.objects.filter(organization=org).update(payment_failed_at=timezone.now())
        with django_capture_on_commit_callbacks(execute=True):
            assert alerts_evaluate()["fired"] == 1
    assert verify_standard_webhook(receiver.requests[0], SECRET)["rule"]["metric"] == "payment_failed"
    # A project-scoped rule still goes with its project.
    assert not AlertRule.objects.filter(project_id=first_project).exists()


@pytest.mark.django_db
def test_budget_whose_channel_was_deleted_falls_back_to_email_and_a_deleted_project_takes_its_budget(
        anon, make_client, smtp, django_capture_on_commit_callbacks):
    api = signup(anon, make_client, "barbara@example.com", name="Liskov")
    org = api.organization
    month = datetime(2026, 3, 1, tzinfo=UTC)
    spare = api.post("/api/v1/projects", {"name": "Spare"}, format="json").json()["id"]
    with Receiver() as receiver, override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True), eager_tasks(), \
            time_machine.travel(datetime(2026, 3, 20, 12, tzinfo=UTC), tick=False):
        from billing.tests.test_invoices import usage

        hook = webhook_channel(api, receiver)
        budget = api.post("/api/v1/budgets", {"amount": "1.00", "channels": [hook]}, format="json").json()
        spare_budget = api.post("/api/v1/budgets", {"amount": "5", "project": spare}, format="json")
        assert spare_budget.status_code == 201, spare_budget.content
        assert api.delete(f"/api/v1/alert-channels/{hook}").status_code == 204
        assert api.get(f"/api/v1/budgets/{budget['id']}").json()["channels"] == []

        deployment = DeploymentFactory(organization=org, project_id=api.project_id)
        usage(deployment, hours=5, start=month)  # 0.90 of 1.00: the 80% threshold
        with django_capture_on_commit_callbacks(execute=True):
            assert budgets_evaluate() == 1
        assert receiver.requests == []
        (rcpts, mail), = smtp.messages  # the owners are told by email instead
        assert rcpts == ["barbara@example.com"] and "80%" in mail["Subject"]

        assert api.delete(f"/api/v1/projects/{spare}").status_code == 204
        assert api.get(f"/api/v1/budgets/{spare_budget.json()['id']}").status_code == 404
        assert [b["id"] for b in api.get("/api/v1/budgets").json()["results"]] == [budget["id"]]
        with django_capture_on_commit_callbacks(execute=True):
            assert budgets_evaluate() == 0


@pytest.mark.django_db
def test_the_last_hours_of_a_month_metered_after_midnight_still_cross_that_months_budget(
        anon, make_client, django_capture_on_commit_callbacks):
    """The hourly job at 00:05 on the 1st meters the previous month's last hours: the budget of that month
    must see them (the new month's spend is still zero)."""
    from billing.tests.factories import record_event

    api = signup(anon, make_client, "edsger@example.com", name="Dijkstra")
    org = api.organization
    started = datetime(2026, 3, 31, 21, tzinfo=UTC)
    deployment = DeploymentFactory(organization=org, project_id=api.project_id, created_at=started)
    record_event(deployment, "running", started)  # three hours of basic-1k in March: 0.54 USD
    with Receiver() as receiver, override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True), eager_tasks():
        hook = webhook_channel(api, receiver)
        with time_machine.travel(datetime(2026, 3, 31, 20, tzinfo=UTC), tick=False):
            budget = api.post("/api/v1/budgets", {"amount": "0.54", "channels": [hook]}, format="json").json()
        with time_machine.travel(datetime(2026, 4, 1, 0, 5, tzinfo=UTC), tick=False), \
                django_capture_on_commit_callbacks(execute=True):
            assert billing_tasks.usage_meter_recent() == 3  # 21:00, 22:00 and 23:00
        with time_machine.travel(datetime(2026, 4, 1, 1, 5, tzinfo=UTC), tick=False), \
                django_capture_on_commit_callbacks(execute=True):
            billing_tasks.usage_meter_recent()  # the next run: nothing new
    crossing = BudgetCrossing.objects.get(budget_id=budget["id"], notified=True)
    assert (crossing.month, crossing.threshold, crossing.spent) == (date(2026, 3, 1), 100,
                                                                     Decimal("0.54"))
    (request,) = receiver.requests
    notice = verify_standard_webhook(request, SECRET)
    assert (notice["month"], notice["threshold"], notice["spent"]) == ("2026-03", 100, "0.54")


@pytest.mark.django_db
def test_failure_and_payment_reported_only_by_stripe_webhooks_drive_the_incident_with_daily_reminders(
        anon, make_client, stripe_on, django_capture_on_commit_callbacks):
    """Stripe can answer an attempt later, by webhook only: the incident follows the webhooks, and the
    default rule reminds once a day while the payment stays failed."""
    from billing.tests.factories import InvoiceFactory

    api = signup(anon, make_client, "alan@example.com", name="Turing")
    org = api.organization
    account = BillingAccountFactory(organization=org)
    invoice = InvoiceFactory(organization=org, account=account, total=Decimal("11.90"))
    web = Client()
    with Receiver() as receiver, override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True), eager_tasks():
        hook = webhook_channel(api, receiver)
        rule = default_rule(api, "payment_failed")
        assert rule["repeat_interval_s"] == 86400
        api.patch(f"/api/v1/alert-rules/{rule['id']}", {"channels": [hook]}, format="json")

        first = _payment_begin(invoice_id=invoice.pk, force=False)
        failed = {"id": "pi_async_failed", "object": "payment_intent", "status": "requires_payment_method",
                  "metadata": {"invoice": invoice.pk, "payment": first.pk, "attempt": "1"},
                  "last_payment_error": {"code": "card_declined", "message": "Your card was declined."}}
        with django_capture_on_commit_callbacks(execute=True):
            assert deliver(web, stripe_event("payment_intent.payment_failed", failed)).status_code == 200
        assert BillingAccount.objects.get(pk=account.pk).payment_failed_at is not None
        t0 = timezone.now()
        with django_capture_on_commit_callbacks(execute=True):
            assert alerts_evaluate(now=t0)["fired"] == 1
            assert alerts_evaluate(now=t0 + timedelta(hours=23))["renotified"] == 0
            assert alerts_evaluate(now=t0 + timedelta(days=1, seconds=1))["renotified"] == 1
        assert [verify_standard_webhook(r, SECRET)["type"] for r in receiver.requests] == ["alert.firing"] * 2

        second = _payment_begin(invoice_id=invoice.pk, force=True)
        paid = {"id": "pi_async_paid", "object": "payment_intent", "status": "succeeded",
                "metadata": {"invoice": invoice.pk, "payment": second.pk, "attempt": "2"}}
        with django_capture_on_commit_callbacks(execute=True):
            assert deliver(web, stripe_event("payment_intent.succeeded", paid)).status_code == 200
        assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.PAID
        assert BillingAccount.objects.get(pk=account.pk).payment_failed_at is None
        with django_capture_on_commit_callbacks(execute=True):
            assert alerts_evaluate(now=t0 + timedelta(days=1, minutes=1))["resolved"] == 1
            assert alerts_evaluate(now=t0 + timedelta(days=2, minutes=1))["renotified"] == 0
    assert [verify_standard_webhook(r, SECRET)["type"] for r in receiver.requests] == [
        "alert.firing", "alert.firing", "alert.resolved"]
    assert Alert.objects.get(organization=org).state == "resolved"
