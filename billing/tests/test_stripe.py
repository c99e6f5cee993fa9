"""Stripe: customers, card binding, collecting invoices, signed webhooks, outages and dunning.

The real ``stripe`` library talks HTTP to localstripe on loopback (``stripe_on``); webhooks are signed
exactly as Stripe signs them. Nothing is mocked.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
import stripe
import time_machine
from django.db import connection
from django.test import Client
from django.utils import timezone

from billing import stripe_gateway
from billing.models import BillingAccount, Invoice, InvoiceStatus, Payment, PaymentStatus, StripeEvent
from billing.services.cards import stripe_customer_ensure
from billing.services.dunning import dunning_run, dunning_warn
from billing.services.payments import _payment_begin, invoice_collect, invoices_collect_due
from billing.tests.factories import BillingAccountFactory, InvoiceFactory, PaymentFactory
from billing.tests.fixtures import WEBHOOK_SECRET
from billing.tests.stripe_standins import Outage, free_port, signed_body, stripe_event
from controlplane import errors
from deployments import services as deployment_services
from deployments.models import Deployment, DeploymentStatus, Region, Spec
from deployments.tests.factories import DeploymentFactory
from projects.models import AuditEvent
from projects.roles import Role
from projects.tenancy import Principal
from projects.tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory, make_api_key

pytestmark = pytest.mark.django_db
WEBHOOK = "/api/v1/billing/stripe/webhook"
DECLINED_ON_CHARGE = "4000000000000341"  # attaches fine, every charge is declined


def client_for(org, make_client, role=Role.OWNER):
    _, secret = make_api_key(org, role=role)
    return make_client(secret)


def stripe_client() -> stripe.StripeClient:
    return stripe_gateway.client()


def bind_card(api, *, card: str = "pm_card_visa") -> dict:
    """What the console does: start the setup, confirm it as Stripe.js would, then tell us it succeeded."""
    setup = api.post("/api/v1/billing/payment-method/setup", {}, format="json")
    assert setup.status_code == 200, setup.content
    params = ({"payment_method": card} if card.startswith("pm_") else
              {"payment_method_data": {"type": "card", "card": {"number": card, "exp_month": 12, "exp_year": 2031,
                                                                 "cvc": "123"}}})
    stripe_client().v1.setup_intents.confirm(setup.json()["setup_intent"], params=params)
    confirmed = api.post("/api/v1/billing/payment-method/confirm", {"setup_intent": setup.json()["setup_intent"]},
                         format="json")
    assert confirmed.status_code == 200, confirmed.content
    return confirmed.json()


def deliver(client: Client, event: dict, *, timestamp: int | None = None, secret: str = WEBHOOK_SECRET):
    payload, header = signed_body(event, secret, timestamp=timestamp)
    return client.post(WEBHOOK, payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)


def open_invoice(org, total: str = "11.90", currency: str = "USD") -> Invoice:
    account = BillingAccount.objects.get(organization=org)
    return InvoiceFactory(organization=org, account=account, total=Decimal(total), currency=currency)


def intent_of(payment: Payment) -> dict:
    return stripe_client().v1.payment_intents.retrieve(payment.stripe_payment_intent_id).to_dict()


def intents_for(invoice: Invoice) -> list[dict]:
    listed = stripe_client().v1.payment_intents.list(params={"limit": 100}).to_dict()["data"]
    return [pi for pi in listed if (pi.get("metadata") or {}).get("invoice") == invoice.pk]


# --- gateway, customer, card ---------------------------------------------------------------------
def test_amounts_go_to_stripe_in_minor_units():
    assert stripe_gateway.minor_units(Decimal("11.90"), "USD") == 1190
    assert stripe_gateway.minor_units(Decimal("1234.56"), "CNY") == 123456  # Stripe: CNY has 2 decimals
    assert stripe_gateway.payment_key("inv_abc", 2) == "pay-inv_abc-2"


def test_customer_is_created_once(stripe_on):
    account = BillingAccountFactory()
    first = stripe_customer_ensure(account=account)
    again = stripe_customer_ensure(account=BillingAccount.objects.get(pk=account.pk))
    assert first == again and first.startswith("cus_")
    customers = stripe_client().v1.customers.list(params={"limit": 100}).to_dict()["data"]
    assert [c["id"] for c in customers if c["metadata"].get("billing_account") == account.pk] == [first]
    assert AuditEvent.objects.filter(action="billing_account.stripe_customer_create").count() == 1


def test_setup_returns_a_client_secret_and_needs_billing_rights(stripe_on, make_client):
    org = OrganizationFactory()
    response = client_for(org, make_client).post("/api/v1/billing/payment-method/setup", {}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["client_secret"].startswith(body["setup_intent"] + "_secret_")
    assert body["publishable_key"] == "pk_test_mqcloud"
    intent = stripe_client().v1.setup_intents.retrieve(body["setup_intent"])
    assert intent.usage == "off_session"
    assert intent.customer == BillingAccount.objects.get(organization=org).stripe_customer_id
    for role in (Role.DEVELOPER, Role.VIEWER):
        denied = client_for(org, make_client, role).post("/api/v1/billing/payment-method/setup", {}, format="json")
        assert denied.status_code == 403
    assert client_for(org, make_client, Role.BILLING).post(
        "/api/v1/billing/payment-method/setup", {}, format="json").status_code == 200


def test_confirmed_card_is_the_default_and_shown(stripe_on, make_client):
    org = OrganizationFactory()
    api = client_for(org, make_client)
    body = bind_card(api)
    assert body["card"]["brand"] == "visa" and body["card"]["last4"] == "4242"
    assert body["card"]["exp_month"] and body["card"]["exp_year"]
    account = BillingAccount.objects.get(organization=org)
    customer = stripe_client().v1.customers.retrieve(account.stripe_customer_id)
    assert customer.invoice_settings.default_payment_method == account.stripe_payment_method_id
    assert api.get("/api/v1/billing/account").json()["card"]["last4"] == "4242"


def test_setup_intent_webhook_sets_the_card_and_an_older_one_does_not_replace_it(stripe_on, make_client):
    org = OrganizationFactory()
    api = client_for(org, make_client)
    intents = []
    for card in ("pm_card_visa", "4000056655665556"):
        setup = api.post("/api/v1/billing/payment-method/setup", {}, format="json").json()
        params = ({"payment_method": card} if card.startswith("pm_") else
                  {"payment_method_data": {"type": "card", "card": {"number": card, "exp_month": 1,
                                                                     "exp_year": 2032, "cvc": "123"}}})
        intents.append(stripe_client().v1.setup_intents.confirm(setup["setup_intent"], params=params).to_dict())
        time.sleep(1.05)  # Stripe's `created` has a one-second resolution
    web = Client()
    assert deliver(web, stripe_event("setup_intent.succeeded", intents[1])).status_code == 200
    assert BillingAccount.objects.get(organization=org).card_last4 == "5556"
    # The first card's event arrives late: the newer card stays.
    assert deliver(web, stripe_event("setup_intent.succeeded", intents[0])).status_code == 200
    assert BillingAccount.objects.get(organization=org).card_last4 == "5556"


# --- offline mode ------------------------------------------------------------------------------------
def test_offline_mode_refuses_card_setup_and_keeps_invoices_here(stripe_off, make_client):
    org = OrganizationFactory()
    api = client_for(org, make_client)
    response = api.post("/api/v1/billing/payment-method/setup", {}, format="json")
    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    assert "not configured" in response.json()["detail"]
    BillingAccountFactory(organization=org)
    invoice = open_invoice(org)
    assert invoices_collect_due() == []
    assert invoice_collect(invoice_id=invoice.pk) is None
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.OPEN and not invoice.payments.exists()
    assert api.get(f"/api/v1/invoices/{invoice.pk}").json()["status"] == "open"
    assert Client().post(WEBHOOK, b"{}", content_type="application/json").status_code == 409


# --- collecting and webhooks -------------------------------------------------------------------------
def test_card_pays_an_invoice_and_the_signed_webhook_confirms_it(stripe_on, make_client):
    org = OrganizationFactory()
    bind_card(client_for(org, make_client))
    invoice = open_invoice(org)
    assert invoices_collect_due() == [invoice.pk]
    payment = invoice_collect(invoice_id=invoice.pk)
    assert payment.status == PaymentStatus.SUCCEEDED and payment.idempotency_key == f"pay-{invoice.pk}-1"
    intent = intent_of(payment)
    assert intent["amount"] == 1190 and intent["currency"] == "usd" and intent["status"] == "succeeded"
    assert intent["metadata"] == {"invoice": invoice.pk, "number": invoice.number, "payment": payment.pk,
                                  "attempt": "1"}
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID and invoice.paid_at is not None
    response = deliver(Client(), stripe_event("payment_intent.succeeded", intent))
    assert response.status_code == 200 and response.json() == {"received": True, "duplicate": False}
    assert StripeEvent.objects.get().processed_at is not None
    assert AuditEvent.objects.filter(action="invoice.paid").count() == 1
    assert invoice_collect(invoice_id=invoice.pk) is None  # paid: nothing more to charge
    assert len(intents_for(invoice)) == 1


def test_webhook_alone_marks_an_attempt_paid_by_its_metadata(stripe_on):
    """The webhook can beat the synchronous answer: the attempt is found by the intent's metadata."""
    account = BillingAccountFactory()
    invoice = InvoiceFactory(organization=account.organization, account=account)
    payment = _payment_begin(invoice_id=invoice.pk, force=False)
    intent = {"id": "pi_fromwebhook1", "object": "payment_intent", "status": "succeeded", "amount": 1190,
              "metadata": {"invoice": invoice.pk, "payment": payment.pk, "attempt": "1"}}
    assert deliver(Client(), stripe_event("payment_intent.succeeded", intent)).status_code == 200
    payment.refresh_from_db()
    invoice.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED and payment.stripe_payment_intent_id == "pi_fromwebhook1"
    assert invoice.status == InvoiceStatus.PAID


def test_replayed_webhook_is_handled_once(stripe_on, make_client):
    org = OrganizationFactory()
    bind_card(client_for(org, make_client))
    invoice = open_invoice(org)
    payment = _payment_begin(invoice_id=invoice.pk, force=False)
    event = stripe_event("payment_intent.succeeded", {"id": "pi_replay1", "metadata": {"payment": payment.pk}})
    web = Client()
    assert deliver(web, event).json()["duplicate"] is False
    assert deliver(web, event).json()["duplicate"] is True
    row = StripeEvent.objects.get(stripe_id=event["id"])
    assert row.deliveries == 2
    assert AuditEvent.objects.filter(action="invoice.paid", target_id=invoice.pk).count() == 1


def test_forged_unsigned_and_stale_webhooks_are_refused(stripe_on):
    web = Client()
    event = stripe_event("payment_intent.succeeded", {"id": "pi_x", "metadata": {}})
    forged = deliver(web, event, secret="whsec_not_ours")
    assert forged.status_code == 400 and forged["Content-Type"] == "application/problem+json"
    payload, header = signed_body(event, WEBHOOK_SECRET)
    assert web.post(WEBHOOK, payload, content_type="application/json").status_code == 400
    tampered = payload.replace(b"pi_x", b"pi_y")
    assert web.post(WEBHOOK, tampered, content_type="application/json",
                    HTTP_STRIPE_SIGNATURE=header).status_code == 400
    stale = deliver(web, event, timestamp=int(time.time()) - 301)
    assert stale.status_code == 400 and "too old" in stale.json()["detail"]
    assert not StripeEvent.objects.exists()


def test_unknown_event_types_are_stored_and_acknowledged(stripe_on):
    response = deliver(Client(), stripe_event("customer.tax_id.created", {"id": "txi_1"}))
    assert response.status_code == 200
    row = StripeEvent.objects.get()
    assert row.type == "customer.tax_id.created" and row.processed_at and row.outcome.startswith("ignored")


def test_failure_reported_after_success_does_not_reopen_the_invoice(stripe_on, make_client, mailoutbox):
    org = OrganizationFactory()
    MembershipFactory(organization=org, role=Role.OWNER)
    bind_card(client_for(org, make_client))
    invoice = open_invoice(org)
    payment = invoice_collect(invoice_id=invoice.pk)
    intent = intent_of(payment)
    now = int(time.time())
    web = Client()
    deliver(web, stripe_event("payment_intent.succeeded", intent, created=now))
    failed = dict(intent, status="requires_payment_method",
                  last_payment_error={"code": "card_declined", "message": "Your card was declined."})
    for created in (now - 5, now + 5):  # older and newer: both arrive after the success
        assert deliver(web, stripe_event("payment_intent.payment_failed", failed, created=created)).status_code == 200
    invoice.refresh_from_db()
    payment.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID and invoice.payment_failed_at is None
    assert payment.status == PaymentStatus.SUCCEEDED
    assert BillingAccount.objects.get(organization=org).payment_failed_at is None
    assert mailoutbox == []


def test_older_event_about_an_attempt_is_ignored(stripe_on):
    payment = PaymentFactory()
    obj = {"id": "pi_order1", "metadata": {"payment": payment.pk}}
    now = int(time.time())
    deliver(Client(), stripe_event("payment_intent.processing", obj, created=now))
    deliver(Client(), stripe_event("payment_intent.payment_failed", dict(obj, last_payment_error={
        "code": "card_declined", "message": "declined"}), created=now - 10))
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.PROCESSING


def test_card_needing_authentication_off_session_is_a_failed_payment(stripe_on, make_client):
    org = OrganizationFactory()
    api = client_for(org, make_client)
    setup = api.post("/api/v1/billing/payment-method/setup", {}, format="json").json()["setup_intent"]
    three_d_secure = {"number": "4000002760003184", "exp_month": 12, "exp_year": 2031, "cvc": "123"}
    intent = stripe_client().v1.setup_intents.confirm(setup, params={"payment_method_data": {
        "type": "card", "card": three_d_secure}})
    assert intent.status == "requires_action"
    stripe_client().v1.setup_intents.confirm(setup)  # the cardholder authenticated in the browser
    assert api.post("/api/v1/billing/payment-method/confirm", {"setup_intent": setup},
                    format="json").status_code == 200
    invoice = open_invoice(org)
    payment = invoice_collect(invoice_id=invoice.pk)
    assert payment.status == PaymentStatus.FAILED and payment.error_code == "authentication_required"
    # A late "processing" event about the failed attempt does not revive it (no retry would ever come).
    deliver(Client(), stripe_event("payment_intent.processing", intent_of(payment)))
    payment.refresh_from_db()
    invoice.refresh_from_db()
    assert payment.status == PaymentStatus.FAILED
    assert invoice.next_payment_attempt_at is not None and invoice.payment_failed_at is not None


def test_stripe_outage_is_retried_later_with_one_charge(stripe_on, settings, make_client):
    org = OrganizationFactory()
    api = client_for(org, make_client)
    bind_card(api)
    first_card = BillingAccount.objects.get(organization=org).stripe_payment_method_id
    invoice = open_invoice(org)
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"  # nobody listens: connection refused
    with pytest.raises(stripe_gateway.StripeUnavailable):
        invoice_collect(invoice_id=invoice.pk)
    with Outage() as outage:
        settings.STRIPE_API_BASE = outage.url
        with pytest.raises(stripe_gateway.StripeUnavailable):
            invoice_collect(invoice_id=invoice.pk)
    pending = Payment.objects.get(invoice=invoice)
    assert pending.status == PaymentStatus.PENDING and pending.attempt == 1
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.OPEN and invoice.payment_attempts == 1
    # The beat job re-drives an attempt left pending for a while, with the same attempt and key.
    assert invoices_collect_due() == []
    later = timezone.now() + timedelta(seconds=settings.BILLING_COLLECT_REDRIVE_AFTER_S + 1)
    assert invoices_collect_due(now=later) == [invoice.pk]
    settings.STRIPE_API_BASE = stripe_on.url
    # A card replaced meanwhile does not change the pending attempt: same key, so the very same request.
    bind_card(api, card="4000056655665556")
    payment = invoice_collect(invoice_id=invoice.pk)
    assert payment.pk == pending.pk and payment.idempotency_key == f"pay-{invoice.pk}-1"
    assert intent_of(payment)["payment_method"] == first_card
    assert payment.status == PaymentStatus.SUCCEEDED
    assert Payment.objects.filter(invoice=invoice).count() == 1
    assert len(intents_for(invoice)) == 1
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID


def test_collect_task_retries_stripe_outages_with_backoff():
    from billing.tasks import invoice_collect

    assert stripe_gateway.StripeUnavailable in invoice_collect.autoretry_for
    assert invoice_collect.retry_backoff and invoice_collect.max_retries


# --- dunning -------------------------------------------------------------------------------------
def test_declined_card_warns_retries_stops_deployments_and_clears_when_paid(
        stripe_on, make_client, mailoutbox, django_capture_on_commit_callbacks, settings):
    org = OrganizationFactory()
    owner = MembershipFactory(organization=org, role=Role.OWNER)
    billing = MembershipFactory(organization=org, role=Role.BILLING)
    MembershipFactory(organization=org, role=Role.DEVELOPER)
    api = client_for(org, make_client)
    bind_card(api, card=DECLINED_ON_CHARGE)
    running = DeploymentFactory(organization=org)
    stopped_before = DeploymentFactory(organization=org, status=DeploymentStatus.STOPPED)
    invoice = open_invoice(org, total="119.00")
    start = timezone.now()

    with time_machine.travel(start, tick=False):
        payment = invoice_collect(invoice_id=invoice.pk)
        assert payment.status == PaymentStatus.FAILED and payment.error_code == "card_declined"
        assert dunning_warn(account_id=invoice.account_id) is True
    account = BillingAccount.objects.get(organization=org)
    assert account.payment_failed_at == start
    invoice.refresh_from_db()
    assert invoice.next_payment_attempt_at == start + timedelta(days=1)
    assert len(mailoutbox) == 1
    warning = mailoutbox[0]
    assert sorted(warning.to) == sorted([owner.user.email, billing.user.email])
    stop_on = (start + timedelta(days=14)).strftime("%Y-%m-%d")
    assert invoice.number in warning.body and "119.00 USD" in warning.body and stop_on in warning.body
    assert api.get("/api/v1/billing/account").json()["deployments_stop_on"] is not None

    # Day 1: retried, declined again, no second warning; the next retry is on day 3.
    with time_machine.travel(start + timedelta(days=1, minutes=1), tick=False):
        assert invoices_collect_due() == [invoice.pk]
        assert invoice_collect(invoice_id=invoice.pk).attempt == 2
        assert dunning_run()["warned"] == 0
    invoice.refresh_from_db()
    assert invoice.next_payment_attempt_at == start + timedelta(days=3)
    assert len(mailoutbox) == 1

    # Grace period over: running deployments are stopped (never deleted), creation and start refused.
    with time_machine.travel(start + timedelta(days=14, minutes=1), tick=False):
        counts = dunning_run()
        assert counts["stopped"] == 1
        assert dunning_run()["stopped"] == 0  # idempotent
    running.refresh_from_db()
    assert running.status == DeploymentStatus.STOPPING
    assert Deployment.objects.filter(organization=org, status=DeploymentStatus.DELETED).count() == 0
    assert AuditEvent.objects.filter(action="deployment.stop", target_id=running.pk, actor_type="system").exists()
    assert AuditEvent.objects.filter(action="billing_account.suspend").count() == 1
    assert len(mailoutbox) == 2 and running.pk in mailoutbox[1].body
    system = Principal.for_system(org)
    with pytest.raises(errors.Conflict, match="unpaid"):
        deployment_services.deployment_start(principal=system, deployment=stopped_before)
    failed_start = DeploymentFactory(organization=org, status=DeploymentStatus.FAILED,
                                     failed_operation=DeploymentStatus.STARTING)
    with pytest.raises(errors.Conflict, match="unpaid"):
        deployment_services.deployment_retry(principal=system, deployment=failed_start)
    create = api.post("/api/v1/deployments", {"project": ProjectFactory(organization=org).pk, "name": "again",
                                              "region": Region.objects.get(id="aws-us-east-1").pk,
                                              "spec": Spec.objects.get(id="basic-1k").pk}, format="json")
    assert create.status_code == 409, create.content
    assert BillingAccount.objects.get(organization=org).suspended_at is not None

    # A working card pays the debt at once; dunning clears; deployments stay stopped, the mail says so.
    with django_capture_on_commit_callbacks(execute=True):
        bind_card(api, card="pm_card_visa")
        assert invoices_collect_due() == [invoice.pk]
        assert invoice_collect(invoice_id=invoice.pk).status == PaymentStatus.SUCCEEDED
    invoice.refresh_from_db()
    account.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert (account.payment_failed_at, account.dunning_warned_at, account.suspended_at) == (None, None, None)
    assert "start them again" in mailoutbox[-1].body
    stopped_before.refresh_from_db()
    assert stopped_before.status == DeploymentStatus.STOPPED
    assert deployment_services.deployment_start(principal=system, deployment=stopped_before).status == "starting"


def test_no_card_on_file_counts_as_a_failed_payment(stripe_on):
    account = BillingAccountFactory()
    invoice = InvoiceFactory(organization=account.organization, account=account)
    payment = invoice_collect(invoice_id=invoice.pk)
    assert payment.status == PaymentStatus.FAILED and payment.error_code == "no_payment_method"
    assert BillingAccount.objects.get(pk=account.pk).payment_failed_at is not None


# --- concurrency (real transactions) -------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_deliveries_of_one_event_are_handled_once(stripe_on):
    account = BillingAccountFactory()
    invoice = InvoiceFactory(organization=account.organization, account=account)
    payment = _payment_begin(invoice_id=invoice.pk, force=False)
    payload, header = signed_body(stripe_event("payment_intent.succeeded", {
        "id": "pi_concurrent", "metadata": {"payment": payment.pk}}), WEBHOOK_SECRET)
    barrier = threading.Barrier(2)
    results: list = []

    def post() -> None:
        try:
            barrier.wait(timeout=10)
            response = Client().post(WEBHOOK, payload, content_type="application/json",
                                     HTTP_STRIPE_SIGNATURE=header)
            results.append((response.status_code, response.json()["duplicate"]))
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == [(200, False), (200, True)]
    assert StripeEvent.objects.get().deliveries == 2
    assert AuditEvent.objects.filter(action="invoice.paid").count() == 1
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.PAID


@pytest.mark.django_db(transaction=True)
def test_localstripe_delivers_signed_webhooks_to_the_live_server(stripe_on, live_server, make_client):
    import requests

    requests.post(f"{stripe_on.url}/_config/webhooks/mqcloud", timeout=5, data={
        "url": f"{live_server.url}{WEBHOOK}", "secret": WEBHOOK_SECRET,
        "events[]": ["payment_intent.succeeded"]}).raise_for_status()
    try:
        org = OrganizationFactory()
        bind_card(client_for(org, make_client))
        invoice = open_invoice(org)
        payment = invoice_collect(invoice_id=invoice.pk)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not StripeEvent.objects.filter(processed_at__isnull=False).exists():
            time.sleep(0.2)
        event = StripeEvent.objects.get(type="payment_intent.succeeded")
        assert event.payload["data"]["object"]["id"] == payment.stripe_payment_intent_id
        assert event.outcome == f"payment {payment.pk}: succeeded"
    finally:
        requests.post(f"{stripe_on.url}/_config/webhooks/mqcloud", timeout=5, data={
            "url": "http://127.0.0.1:9/gone", "secret": WEBHOOK_SECRET, "events[]": ["none"]})


def test_schema_documents_the_payment_endpoints(anon):
    schema = anon.get("/api/v1/schema?format=json").json()
    paths = schema["paths"]
    ref = paths["/api/v1/billing/payment-method/setup"]["post"]["responses"]["200"]["content"]["application/json"]
    assert "client_secret" in schema["components"]["schemas"][ref["schema"]["$ref"].rsplit("/", 1)[1]]["properties"]
    assert "/api/v1/billing/payment-method/confirm" in paths and "/api/v1/billing/stripe/webhook" in paths
