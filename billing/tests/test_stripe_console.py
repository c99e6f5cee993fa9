"""The billing page's payment-method card, the dunning banner, and the ops site's Stripe views."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.utils import quote
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from billing import stripe_gateway
from billing.models import BillingAccount, Payment
from billing.services.payments import invoice_collect
from billing.tests.factories import BillingAccountFactory, InvoiceFactory, StripeEventFactory
from projects.models import AuditEvent
from projects.roles import Role
from projects.tests.factories import MembershipFactory, operator_user

pytestmark = pytest.mark.django_db


def owner_client() -> tuple[Client, BillingAccount]:
    member = MembershipFactory(role=Role.OWNER)
    client = Client()
    client.force_login(member.user)
    return client, BillingAccountFactory(organization=member.organization)


def account_page(client: Client) -> str:
    response = client.get(reverse("console:billing-account"))
    assert response.status_code == 200
    return response.content.decode()


def test_offline_billing_page_says_so_and_loads_no_stripe_script(stripe_off):
    client, _ = owner_client()
    html = account_page(client)
    assert "Card payments are offline in this installation; invoices are kept here." in html
    assert "No card on file." in html
    assert "js.stripe.com" not in html and "card-setup-form" not in html


def test_billing_page_offers_stripe_elements_when_a_key_is_set(stripe_on):
    client, _ = owner_client()
    html = account_page(client)
    assert '<script src="https://js.stripe.com/v3/"></script>' in html
    assert 'data-publishable-key="pk_test_mqcloud"' in html and "Add card" in html
    assert "offline" not in html


def test_console_confirm_saves_the_card(stripe_on):
    client, account = owner_client()
    setup = client.post("/api/v1/billing/payment-method/setup", {}, content_type="application/json")
    assert setup.status_code == 200, setup.content
    setup_intent = setup.json()["setup_intent"]
    stripe_gateway.client().v1.setup_intents.confirm(setup_intent, params={"payment_method": "pm_card_visa"})
    response = client.post(reverse("console:billing-payment-method-confirm"), {"setup_intent": setup_intent})
    assert response.status_code == 302
    html = account_page(client)
    assert "Visa •••• 4242" in html and "Replace card" in html
    assert AuditEvent.objects.filter(action="billing_account.card_set", target_id=account.pk).exists()


def test_console_confirm_of_an_unfinished_setup_is_a_message(stripe_on):
    client, _ = owner_client()
    setup_intent = client.post("/api/v1/billing/payment-method/setup", {},
                               content_type="application/json").json()["setup_intent"]
    response = client.post(reverse("console:billing-payment-method-confirm"), {"setup_intent": setup_intent},
                           follow=True)
    assert "has not succeeded" in response.content.decode()


def test_dunning_banner_shows_grace_then_suspension(stripe_off):
    client, account = owner_client()
    failed_at = timezone.now()
    invoice = InvoiceFactory(organization=account.organization, account=account, payment_failed_at=failed_at)
    BillingAccount.objects.filter(pk=account.pk).update(payment_failed_at=failed_at)
    html = client.get(reverse("console:billing")).content.decode()
    assert 'id="dunning-banner"' in html and invoice.number in html
    assert (failed_at + timedelta(days=14)).strftime("%Y-%m-%d") in html
    BillingAccount.objects.filter(pk=account.pk).update(suspended_at=failed_at + timedelta(days=14))
    assert "Deployments were stopped" in client.get(reverse("console:billing-invoices")).content.decode()


def test_ops_site_shows_stripe_state_and_retries_collection(stripe_on):
    staff = operator_user()
    client = Client()
    client.force_login(staff)
    account = BillingAccountFactory()
    invoice = InvoiceFactory(organization=account.organization, account=account)
    invoice_collect(invoice_id=invoice.pk)  # no card: a failed attempt
    StripeEventFactory()
    payment = Payment.objects.get(invoice=invoice)
    for url in ("/ops/billing/stripeevent/", "/ops/billing/payment/",
                f"/ops/billing/payment/{quote(payment.pk)}/change/",
                f"/ops/billing/invoice/{quote(invoice.pk)}/change/", "/ops/billing/billingaccount/"):
        assert client.get(url).status_code == 200, url
    response = client.post("/ops/billing/invoice/", {"action": "retry_collection", "_selected_action": [invoice.pk]})
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="ops.invoice.retry_collection", target_id=invoice.pk).exists()
