"""The billing pages of the console, driven through Django's test client."""

from __future__ import annotations

from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import BillingAccount, Invoice, InvoiceLine, Subscription, SubscriptionMode, UsageRecord, VatStatus
from billing.money import REVERSE_CHARGE_NOTE
from billing.tests.factories import BillingAccountFactory, InvoiceFactory
from deployments.models import Spec
from deployments.tests.factories import DeploymentFactory
from projects.roles import Role
from tests.support import console_login as logged_in
from tests.support import console_page as page
from tests.support import console_url as url

pytestmark = pytest.mark.django_db


def account_data(**overrides) -> dict:
    return {"legal_name": "Acme GmbH", "address": "Hauptstr. 1\n10115 Berlin", "country": "DE",
            "vat_number": "DE136695976"} | overrides


# --- nav and pages ------------------------------------------------------------------------------------
def test_nav_entry_only_for_billing_roles():
    client, _ = logged_in(Role.BILLING)
    assert ">Billing<" in page(client, "deployments")
    client, _ = logged_in(Role.DEVELOPER)
    assert ">Billing<" not in page(client, "deployments")
    assert client.get(url("billing")).status_code == 403


def test_empty_states():
    client, member = logged_in()
    usage = page(client, "billing")
    assert "No metered usage this month yet" in usage
    assert "$0.00" in usage
    assert "No invoices yet" in page(client, "billing-invoices")
    account = page(client, "billing-account")
    assert "USD" in account and "Edit billing details" in account


def test_usage_page_lists_metered_deployments_and_estimate():
    client, member = logged_in()
    deployment = DeploymentFactory(organization=member.organization, name="telemetry")
    spec = Spec.objects.get(id="basic-1k")
    hour = timezone.now().astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    for n in range(2):
        UsageRecord.objects.create(organization=member.organization, deployment=deployment, spec=spec,
                                   hour_start=hour + timedelta(hours=n), seconds=3600, currency="USD",
                                   hourly_price=Decimal("0.5000"))
    UsageRecord.objects.create(organization=member.organization, deployment=deployment, spec=spec, rate="stopped",
                               hour_start=hour + timedelta(hours=2), seconds=1800, currency="USD",
                               hourly_price=Decimal("0.0100"))
    body = page(client, "billing")
    assert "telemetry" in body and "basic-1k" in body
    assert "2.00 h" in body
    assert "stopped (storage)" in body and "0.50 h stopped" in body
    assert "$1.01" in body  # 2 h × 0.50 + 0.5 h × 0.01 (0.005, rounded half-up)
    assert "No metered usage" not in body


def test_account_page_shows_details_and_vat_status():
    client, member = logged_in(Role.BILLING)
    BillingAccountFactory(organization=member.organization, legal_name="Acme GmbH", vat_number="DE136695976",
                          vat_status=VatStatus.UNCHECKED)
    body = page(client, "billing-account")
    assert "Acme GmbH" in body and "DE136695976" in body
    assert "badge-vat-unchecked" in body and "reverse charge applies once it is" in body


def test_billing_role_edits_the_account():
    client, member = logged_in(Role.BILLING)
    response = client.post(url("billing-account"), account_data())
    assert response.status_code == 302
    account = BillingAccount.objects.get(organization=member.organization)
    assert account.legal_name == "Acme GmbH" and account.vat_number == "DE136695976"
    assert account.vat_status == VatStatus.UNCHECKED
    assert "Billing details saved" in client.get(response.url).content.decode()


def test_invalid_vat_number_is_shown_on_the_form():
    client, member = logged_in()
    response = client.post(url("billing-account"), account_data(vat_number="DE136695977"))
    assert response.status_code == 400
    assert "not a valid VAT number" in response.content.decode()
    assert not BillingAccount.objects.filter(organization=member.organization, vat_number__gt="").exists()


def test_country_mismatch_is_shown_on_the_form():
    client, _ = logged_in()
    response = client.post(url("billing-account"), account_data(country="FR"))
    assert response.status_code == 400
    assert "starts with FR" in response.content.decode()


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.VIEWER])
def test_roles_without_billing_manage_cannot_post(role):
    client, member = logged_in(role)
    deployment = DeploymentFactory(organization=member.organization)
    assert client.post(url("billing-account"), account_data()).status_code == 403
    assert client.post(url("deployment-switch-to-annual", deployment.id), {"renew": "on"}).status_code == 403
    assert not Subscription.objects.filter(deployment=deployment, mode=SubscriptionMode.ANNUAL).exists()


# --- invoices -----------------------------------------------------------------------------------------
def test_invoice_list_and_html_view_with_reverse_charge():
    client, member = logged_in()
    invoice = InvoiceFactory(organization=member.organization, legal_name="Acme SAS", country="FR",
                             vat_number="FR40303265045", vat_rate=Decimal("0"), vat_amount=Decimal("0.00"),
                             subtotal=Decimal("12.50"), total=Decimal("12.50"), vat_note=REVERSE_CHARGE_NOTE)
    InvoiceLine.objects.create(invoice=invoice, position=1, description="broker-1 basic-1k", quantity=Decimal(25),
                               unit="h", unit_price=Decimal("0.5"), amount=Decimal("12.50"))
    listing = page(client, "billing-invoices")
    assert invoice.number in listing and "$12.50" in listing and "badge-invoice-open" in listing
    body = page(client, "billing-invoice", invoice.id)
    assert "Acme SAS" in body and "FR40303265045" in body and "broker-1 basic-1k" in body
    assert "Reverse charge" in body and 'id="vat-note"' in body
    assert f"/api/v1/invoices/{invoice.id}.pdf" in body
    pdf = client.get(f"/api/v1/invoices/{invoice.id}.pdf")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"


def test_invoice_without_reverse_charge_has_no_note():
    client, member = logged_in()
    invoice = InvoiceFactory(organization=member.organization)
    body = page(client, "billing-invoice", invoice.id)
    assert "VAT 19%" in body and "$1.90" in body and "$11.90" in body
    assert 'id="vat-note"' not in body


def test_other_organizations_invoice_is_404():
    client, _ = logged_in()
    other = InvoiceFactory()
    assert client.get(url("billing-invoice", other.id)).status_code == 404
    assert other.number not in page(client, "billing-invoices")


# --- subscription card --------------------------------------------------------------------------------
def test_switch_to_annual_and_second_switch_is_a_message():
    client, member = logged_in(Role.BILLING)
    deployment = DeploymentFactory(organization=member.organization)
    body = page(client, "deployment-detail", deployment.id)
    assert "Switch to annual" in body and "saving" in body
    response = client.post(url("deployment-switch-to-annual", deployment.id), {"renew": "on"}, follow=True)
    assert response.status_code == 200
    subscription = Subscription.objects.get(deployment=deployment)
    assert subscription.mode == SubscriptionMode.ANNUAL and subscription.renews
    body = response.content.decode()
    assert "now on annual billing" in body and "Renews automatically" in body
    assert "Switch to annual…</button>" not in body
    response = client.post(url("deployment-switch-to-annual", deployment.id), {}, follow=True)
    assert response.status_code == 200
    assert "already on annual billing" in response.content.decode()
    assert Subscription.objects.get(deployment=deployment).renews


def test_subscription_card_hidden_without_billing_read():
    client, member = logged_in(Role.DEVELOPER)
    deployment = DeploymentFactory(organization=member.organization)
    assert 'id="subscription"' not in page(client, "deployment-detail", deployment.id)


def test_switch_for_another_organizations_deployment_is_404():
    client, _ = logged_in()
    other = DeploymentFactory()
    assert client.post(url("deployment-switch-to-annual", other.id)).status_code == 404
    assert not Subscription.objects.filter(deployment=other, mode=SubscriptionMode.ANNUAL).exists()


# --- VIES details and budgets -------------------------------------------------------------------------
def test_account_page_shows_the_vies_check():
    client, member = logged_in(Role.BILLING)
    BillingAccountFactory(organization=member.organization, country="FR", vat_number="FR40303265045",
                          vat_status=VatStatus.VALID, vat_checked_at=timezone.now(),
                          vat_consultation_number="WAPIAAAAZ0000042", vat_registered_name="SOCIETE TEST SA")
    html = page(client, "billing-account")
    assert "WAPIAAAAZ0000042" in html and "SOCIETE TEST SA" in html and "checked " in html
    account = BillingAccount.objects.get(organization=member.organization)
    account.vat_status = VatStatus.UNCHECKED
    account.vat_check_error = "VIES could not check the number: MS_UNAVAILABLE."
    account.vat_check_attempted_at = timezone.now()
    account.save()
    html = page(client, "billing-account")
    assert "MS_UNAVAILABLE" in html and "retried automatically" in html


def test_budgets_section_create_edit_delete():
    from alerts.tests.factories import AlertChannelFactory
    from billing.models import Budget

    client, member = logged_in(Role.BILLING)
    org = member.organization
    channel = AlertChannelFactory(organization=org, name="finance-mail")
    deployment = DeploymentFactory(organization=org)
    hour = timezone.now().astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    UsageRecord.objects.create(organization=org, deployment=deployment, hour_start=hour, spec_id="basic-1k",
                               seconds=3600 * 9, currency="USD", hourly_price=Decimal("0.18"))  # 1.62 USD
    assert "No budgets" in page(client, "billing")
    form = page(client, "billing-budget-create")
    assert "The whole organization" in form and "finance-mail" in form
    response = client.post(url("billing-budget-create"), {"project": "", "amount": "0", "enabled": "on"})
    assert response.status_code == 400
    response = client.post(url("billing-budget-create"), {"project": "", "amount": "1.80", "enabled": "on",
                                                          "channels": [channel.id]})
    assert response.status_code == 302, response.content[:500]
    budget = Budget.objects.get(organization=org)
    html = page(client, "billing")
    assert 'value="90" max="100"' in html and "$1.62" in html and "$1.80" in html and "finance-mail" in html
    response = client.post(url("billing-budget-create"), {"project": "", "amount": "5", "enabled": "on"})
    assert response.status_code == 400 and "already a budget" in response.content.decode()
    response = client.post(url("billing-budget-edit", budget.id), {"amount": "1.00", "enabled": "on"})
    assert response.status_code == 302
    budget.refresh_from_db()
    assert budget.amount == Decimal("1.00") and not budget.channels.exists()
    assert 'value="100" max="100"' in page(client, "billing")  # 162 %, the bar is full
    assert client.post(url("billing-budget-delete", budget.id)).status_code == 302
    assert not Budget.objects.exists()


def test_budgets_of_another_organization_are_not_found():
    from billing.tests.factories import BudgetFactory

    client, member = logged_in(Role.OWNER)
    other = BudgetFactory()
    assert client.get(url("billing-budget-edit", other.id)).status_code == 404
    assert client.post(url("billing-budget-delete", other.id)).status_code == 404


def test_switch_to_annual_get_only_shows_the_charge_and_post_switches():
    client, member = logged_in()
    deployment = DeploymentFactory(organization=member.organization)
    body = client.get(url("deployment-switch-to-annual", deployment.id), {"renew": "on"}).content.decode()
    assert "$1,340.00" in body and "cannot be undone" in body and "Renews automatically" in body
    assert 'name="renew" value="on"' in body
    assert not Subscription.objects.filter(deployment=deployment, mode=SubscriptionMode.ANNUAL).exists()
    client.post(url("deployment-switch-to-annual", deployment.id), {"renew": "on"})
    assert Subscription.objects.get(deployment=deployment).mode == SubscriptionMode.ANNUAL
    # Already annual: the confirmation page sends back to the deployment with a message.
    response = client.get(url("deployment-switch-to-annual", deployment.id), follow=True)
    assert "already on annual billing" in response.content.decode()


def test_invoice_preview_changes_nothing():
    client, member = logged_in()
    DeploymentFactory(organization=member.organization)
    body = page(client, "billing-invoice-preview")
    assert "A preview, not an invoice" in body and "Nothing to invoice this month so far." in body
    assert not Invoice.objects.filter(organization=member.organization).exists()
