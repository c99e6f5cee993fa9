"""Monthly budgets: spend as invoicing counts it, 50/80/100% crossings notified once a month each, delivered
over real HTTP/SMTP to local stand-ins (webhook receiver with signature check, PagerDuty, SMTP sink)."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test import override_settings

from alerts.models import Notification
from alerts.tests.factories import AlertChannelFactory
from alerts.tests.standins import Receiver, verify_standard_webhook
from billing import selectors
from billing.models import Budget, BudgetCrossing
from billing.services.budgets import budget_update, budgets_evaluate
from billing.services.invoicing import invoice_generate
from billing.services.subscriptions import subscription_switch_to_annual
from billing.tests.factories import BillingAccountFactory, BudgetFactory
from billing.tests.test_invoices import usage
from deployments.tests.factories import DeploymentFactory
from projects.models import AuditEvent
from projects.roles import Role
from projects.tenancy import Principal
from projects.tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory
from tests.support import eager_tasks

pytestmark = pytest.mark.django_db

BUDGETS = "/api/v1/budgets"
MID_MARCH = datetime(2026, 3, 20, 12, tzinfo=UTC)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ROUTING_KEY = "R0123456789abcdef0123456789ABCDE"


def evaluate(now: datetime = MID_MARCH, capture=None) -> int:
    with time_machine.travel(now, tick=False):
        if capture is None:
            return budgets_evaluate(now=now)
        with eager_tasks(), capture(execute=True):  # callbacks run at capture's exit: still eager then
            return budgets_evaluate(now=now)


# --- API ---------------------------------------------------------------------------------------------
def test_crud_filter_and_spent(org, client_for):
    api = client_for(Role.BILLING)
    deployment = DeploymentFactory(organization=org)
    channel = AlertChannelFactory(organization=org)
    with time_machine.travel(MID_MARCH, tick=False):
        usage(deployment, hours=10)  # 10 h × 0.18 = 1.80 USD in March
        response = api.post(BUDGETS, {"amount": "100", "channels": [channel.id]}, format="json")
        assert response.status_code == 201, response.json()
        body = response.json()
        assert body["id"].startswith("bud_") and body["project"] is None
        assert (body["amount"], body["currency"], body["spent"], body["enabled"]) == ("100.00", "USD", "1.80", True)
        assert body["channels"] == [channel.id]
        project_budget = api.post(BUDGETS, {"amount": "5.50", "project": deployment.project_id}, format="json")
        assert project_budget.status_code == 201 and project_budget.json()["spent"] == "1.80"
        other_project = api.post(BUDGETS, {"amount": "5", "project": ProjectFactory(organization=org).id},
                                 format="json").json()
        assert other_project["spent"] == "0.00"
        listed = api.get(BUDGETS).json()
        assert len(listed["results"]) == 3 and "next" in listed
        filtered = api.get(BUDGETS, {"project": deployment.project_id}).json()["results"]
        assert [b["id"] for b in filtered] == [project_budget.json()["id"]]
        patched = api.patch(f"{BUDGETS}/{body['id']}", {"amount": "250.00", "channels": [], "enabled": False},
                            format="json")
        assert patched.status_code == 200, patched.json()
        assert (patched.json()["amount"], patched.json()["channels"], patched.json()["enabled"]) == (
            "250.00", [], False)
        assert api.get(f"{BUDGETS}/{body['id']}").json()["amount"] == "250.00"
        assert api.delete(f"{BUDGETS}/{body['id']}").status_code == 204
        assert api.get(f"{BUDGETS}/{body['id']}").status_code == 404
    assert set(AuditEvent.objects.filter(action__startswith="budget.").values_list("action", flat=True)) == {
        "budget.create", "budget.update", "budget.delete"}


def test_one_budget_per_scope(org, client_for):
    api = client_for()
    project = ProjectFactory(organization=org)
    assert api.post(BUDGETS, {"amount": "10"}, format="json").status_code == 201
    assert api.post(BUDGETS, {"amount": "10", "project": project.id}, format="json").status_code == 201
    for body in ({"amount": "20"}, {"amount": "20", "project": project.id}):
        response = api.post(BUDGETS, body, format="json")
        assert response.status_code == 409 and response["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize(("role", "read", "write"), [
    (Role.OWNER, 200, 201), (Role.ADMIN, 200, 201), (Role.BILLING, 200, 201),
    (Role.DEVELOPER, 403, 403), (Role.VIEWER, 403, 403),
])
def test_permissions(client_for, role, read, write):
    api = client_for(role)
    assert api.get(BUDGETS).status_code == read
    assert api.post(BUDGETS, {"amount": "10"}, format="json").status_code == write


def test_validation_errors_are_problem_details(org, client_for):
    api = client_for()
    stranger = OrganizationFactory()
    cases = [
        ({"amount": "0"}, "amount"),
        ({"amount": "-5"}, "amount"),
        ({"amount": "1.234"}, "amount"),
        ({"amount": "ten"}, "amount"),
        ({}, "amount"),
        ({"amount": "10", "project": ProjectFactory(organization=stranger).id}, "project"),
        ({"amount": "10", "project": "prj_doesnotexist"}, "project"),
        ({"amount": "10", "channels": [AlertChannelFactory(organization=stranger).id]}, "channels"),
        ({"amount": "10", "channels": ["not-an-id"]}, "channels"),
        ({"amount": "10", "currency": "EUR"}, "currency"),
    ]
    for body, field in cases:
        response = api.post(BUDGETS, body, format="json")
        assert response.status_code == 400, (body, response.json())
        assert response["Content-Type"] == "application/problem+json"
        assert any(key.split(".")[0] == field for key in response.json()["errors"]), (body, response.json())
    budget = BudgetFactory(organization=org)
    for body, field in (({"amount": "0"}, "amount"), ({"project": None}, "project"),
                        ({"channels": [AlertChannelFactory(organization=stranger).id]}, "channels")):
        response = api.patch(f"{BUDGETS}/{budget.id}", body, format="json")
        assert response.status_code == 400 and field in response.json()["errors"], (body, response.json())
    assert not Budget.objects.exclude(pk=budget.pk).exists()


def test_project_limited_member_sees_and_sets_only_their_projects(org, session_client):
    mine, other = ProjectFactory(organization=org), ProjectFactory(organization=org)
    BudgetFactory(organization=org)  # the organization's
    theirs = BudgetFactory(organization=org, project=other)
    member = MembershipFactory(organization=org, role=Role.BILLING, projects=[mine])
    api = session_client(member.user)
    assert api.get(BUDGETS).json()["results"] == []
    assert api.get(f"{BUDGETS}/{theirs.id}").status_code == 404
    assert api.post(BUDGETS, {"amount": "10"}, format="json").status_code == 403
    assert api.post(BUDGETS, {"amount": "10", "project": other.id}, format="json").status_code == 400
    assert api.post(BUDGETS, {"amount": "10", "project": mine.id}, format="json").status_code == 201


# --- spend --------------------------------------------------------------------------------------------
def test_spend_is_what_the_invoice_charges(org):
    account = BillingAccountFactory(organization=org, country="DE")
    deployment = DeploymentFactory(organization=org)
    usage(deployment, hours=10)
    usage(deployment, hours=1, seconds=1234, spec_id="basic-5k", start=datetime(2026, 3, 20, tzinfo=UTC))
    usage(deployment, hours=3, start=datetime(2026, 4, 1, tzinfo=UTC))  # April: not March's
    with time_machine.travel(datetime(2026, 4, 1, 0, 30, tzinfo=UTC), tick=False):
        invoice = invoice_generate(account=account, period_start=date(2026, 3, 1))
    spent = selectors.spend_for_month(organization_id=org.id, currency="USD",
                                      month_start=datetime(2026, 3, 1, tzinfo=UTC))
    assert spent == invoice.subtotal == Decimal("1.95")


# --- crossings ----------------------------------------------------------------------------------------
def test_each_threshold_notifies_once_a_month(org, django_capture_on_commit_callbacks):
    deployment = DeploymentFactory(organization=org)
    channel = AlertChannelFactory(organization=org)
    budget = BudgetFactory(organization=org, amount=Decimal("1.80"))  # = 10 hours
    budget.channels.set([channel])
    hours = 0

    def run_to(total: int) -> int:
        nonlocal hours
        usage(deployment, hours=total - hours, start=datetime(2026, 3, 5, hours, tzinfo=UTC))
        hours = total
        return evaluate()

    assert run_to(4) == 0  # 40 %
    assert run_to(5) == 1  # 50 %
    assert evaluate() == 0  # rerun: nothing new
    assert run_to(7) == 0
    assert run_to(8) == 1  # 80 %
    assert run_to(10) == 1  # 100 %
    assert run_to(12) == 0 and evaluate() == 0
    crossings = BudgetCrossing.objects.filter(budget=budget).order_by("threshold")
    assert [(c.month, c.threshold, c.spent, c.notified) for c in crossings] == [
        (date(2026, 3, 1), 50, Decimal("0.90"), True), (date(2026, 3, 1), 80, Decimal("1.44"), True),
        (date(2026, 3, 1), 100, Decimal("1.80"), True)]
    notices = Notification.objects.filter(channel=channel, kind="notice").order_by("created_at")
    assert [(n.payload["threshold"], n.payload["severity"]) for n in notices] == [
        (50, "info"), (80, "warning"), (100, "critical")]
    assert all(n.alert_id is None for n in notices)
    # A new month starts over.
    usage(deployment, hours=5, start=datetime(2026, 4, 2, tzinfo=UTC))
    assert evaluate(datetime(2026, 4, 3, tzinfo=UTC)) == 1
    assert BudgetCrossing.objects.filter(budget=budget, month=date(2026, 4, 1)).get().threshold == 50


def test_several_thresholds_at_once_send_one_notice_for_the_highest(org):
    deployment = DeploymentFactory(organization=org)
    channel = AlertChannelFactory(organization=org)
    BudgetFactory(organization=org, amount=Decimal("1.00")).channels.set([channel])
    usage(deployment, hours=10)  # 180 %
    assert evaluate() == 1 and evaluate() == 0
    assert list(BudgetCrossing.objects.order_by("threshold").values_list("threshold", "notified")) == [
        (50, False), (80, False), (100, True)]
    assert Notification.objects.get(channel=channel).payload["threshold"] == 100


def test_project_budget_counts_only_its_deployments_and_annual_terms_of_the_month(org):
    mine = DeploymentFactory(organization=org)
    other = DeploymentFactory(organization=org)
    assert mine.project_id != other.project_id
    budget = BudgetFactory(organization=org, project=mine.project, amount=Decimal("1000.00"))
    usage(other, hours=100)
    usage(mine, hours=1)
    assert selectors.budget_spent(budget=budget, now=MID_MARCH) == Decimal("0.18")
    with time_machine.travel(datetime(2026, 2, 27, tzinfo=UTC), tick=False):  # February's term: not March's
        subscription_switch_to_annual(principal=Principal.for_system(org), deployment=other, renew=False)
    assert evaluate() == 0
    with time_machine.travel(datetime(2026, 3, 10, tzinfo=UTC), tick=False):
        subscription_switch_to_annual(principal=Principal.for_system(org), deployment=mine, renew=False)
    assert selectors.budget_spent(budget=budget, now=MID_MARCH) == Decimal("1340.18")
    assert evaluate() == 1
    assert BudgetCrossing.objects.filter(budget=budget, notified=True).get().threshold == 100


def test_disabled_budgets_are_not_evaluated_and_a_lower_amount_only_repeats_unreached_thresholds(org):
    deployment = DeploymentFactory(organization=org)
    budget = BudgetFactory(organization=org, amount=Decimal("1.80"), enabled=False)
    usage(deployment, hours=9)  # 1.62: 90 %
    assert evaluate() == 0
    principal = Principal.for_system(org)
    with time_machine.travel(MID_MARCH, tick=False):
        budget_update(principal=principal, budget=budget, enabled=True)
    assert evaluate() == 1  # 80 % (50 % recorded with it)
    with time_machine.travel(MID_MARCH, tick=False):
        budget_update(principal=principal, budget=budget, amount=Decimal("3.00"))  # now 54 %
    assert list(BudgetCrossing.objects.values_list("threshold", flat=True)) == [50]
    assert evaluate() == 0
    with time_machine.travel(MID_MARCH, tick=False):
        budget_update(principal=principal, budget=budget, amount=Decimal("1.80"))
    assert evaluate() == 1  # 80 % is news again under the amount it was not reached with


# --- delivery -----------------------------------------------------------------------------------------
def test_delivery_to_webhook_pagerduty_and_email_channels(org, smtp, django_capture_on_commit_callbacks):
    deployment = DeploymentFactory(organization=org)
    with Receiver() as webhook, Receiver() as pagerduty, override_settings(
            OUTBOUND_HTTP_ALLOW_LOOPBACK=True, PAGERDUTY_EVENTS_URL=pagerduty.url + "/v2/enqueue"):
        channels = [
            AlertChannelFactory(organization=org, type="webhook", config={"url": webhook.url + "/hook"},
                                secret=SECRET),
            AlertChannelFactory(organization=org, type="pagerduty", config={}, secret=ROUTING_KEY),
            AlertChannelFactory(organization=org, type="email", config={"recipients": ["finance@example.com"]}),
        ]
        budget = BudgetFactory(organization=org, amount=Decimal("1.80"))
        budget.channels.set(channels)
        usage(deployment, hours=8)  # 80 %
        assert evaluate(capture=django_capture_on_commit_callbacks) == 1

    assert set(Notification.objects.values_list("status", flat=True)) == {"delivered"}
    body = verify_standard_webhook(webhook.requests[0], SECRET)
    assert body["type"] == "budget.threshold_crossed" and body["test"] is False
    assert body["budget"] == {"id": budget.id, "project": None, "amount": "1.80", "currency": "USD"}
    assert (body["threshold"], body["spent"], body["amount"], body["month"]) == (80, "1.44", "1.80", "2026-03")
    assert body["severity"] == "warning" and body["organization"]["id"] == org.id
    assert body["links"]["budget"].endswith(f"/api/v1/budgets/{budget.id}")
    assert body["links"]["console"].endswith("/console/billing")
    assert webhook.requests[0]["headers"]["webhook-id"].startswith("ntf_")

    event = pagerduty.json_bodies()[0]
    assert event["event_action"] == "trigger" and event["routing_key"] == ROUTING_KEY
    assert event["dedup_key"] == f"mqcloud-budget-{budget.id}-2026-03-80"
    assert event["payload"]["severity"] == "warning" and event["payload"]["class"] == "budget.threshold_crossed"
    assert event["payload"]["summary"].startswith("Budget 80% reached: 1.44 of 1.80 USD")

    [(recipients, message)] = smtp.messages
    assert recipients == ["finance@example.com"]
    assert message["Subject"].startswith("[mqcloud] Budget 80% reached")
    text = message.get_body(("plain",)).get_content()
    assert "Spent: 1.44 USD" in text and "Threshold: 80%" in text and "/console/billing" in text


def test_without_channels_owners_and_billing_members_are_emailed(org, smtp, django_capture_on_commit_callbacks):
    owner = MembershipFactory(organization=org, role=Role.OWNER)
    billing = MembershipFactory(organization=org, role=Role.BILLING)
    MembershipFactory(organization=org, role=Role.DEVELOPER)
    MembershipFactory(organization=org, role=Role.BILLING, projects=[ProjectFactory(organization=org)])
    deployment = DeploymentFactory(organization=org)
    BudgetFactory(organization=org, amount=Decimal("1.80"))
    usage(deployment, hours=10)
    assert evaluate(capture=django_capture_on_commit_callbacks) == 1
    [(recipients, message)] = smtp.messages
    assert sorted(recipients) == sorted([owner.user.email, billing.user.email])
    assert message["Subject"].startswith("[mqcloud] Budget 100% reached")
    assert not Notification.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_evaluations_notify_once(org):
    deployment = DeploymentFactory(organization=org)
    channel = AlertChannelFactory(organization=org)
    BudgetFactory(organization=org, amount=Decimal("1.80")).channels.set([channel])
    usage(deployment, hours=10)
    results: list[int] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        try:
            barrier.wait()
            results.append(budgets_evaluate(now=MID_MARCH))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 0, 0, 1]
    assert BudgetCrossing.objects.count() == 3 and Notification.objects.count() == 1


def test_the_hourly_metering_task_evaluates_budgets(org):
    from billing import tasks
    from billing.tests.factories import record_event

    started = datetime(2026, 3, 20, tzinfo=UTC)
    deployment = DeploymentFactory(organization=org, created_at=started)
    record_event(deployment, "running", started)
    budget = BudgetFactory(organization=org, amount=Decimal("0.36"))  # two hours
    with time_machine.travel(datetime(2026, 3, 20, 2, 5, tzinfo=UTC), tick=False):
        tasks.usage_meter_recent()
    assert BudgetCrossing.objects.get(budget=budget, notified=True).threshold == 100
    with time_machine.travel(datetime(2026, 3, 20, 2, 6, tzinfo=UTC), tick=False):
        assert tasks.budgets_evaluate() == 0
