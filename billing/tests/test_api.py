from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from billing.models import AnnualCharge, BillingAccount, UsageRecord, VatStatus
from billing.services.usage import usage_meter_hour
from billing.tests.factories import InvoiceFactory, record_event
from deployments.tests.factories import DeploymentFactory
from projects.models import AuditEvent
from projects.roles import Role

pytestmark = pytest.mark.django_db

ACCOUNT = "/api/v1/billing/account"


def test_account_created_lazily_with_site_and_currency(org, client_for):
    assert not BillingAccount.objects.filter(organization=org).exists()
    response = client_for(Role.BILLING).get(ACCOUNT)
    assert response.status_code == 200
    assert response.json()["site"] == "global" and response.json()["currency"] == "USD"
    assert response.json()["vat_status"] == "unchecked"
    assert BillingAccount.objects.filter(organization=org).count() == 1


@pytest.mark.parametrize(("role", "get", "patch"), [
    (Role.OWNER, 200, 200), (Role.ADMIN, 200, 200), (Role.BILLING, 200, 200),
    (Role.DEVELOPER, 403, 403), (Role.VIEWER, 403, 403),
])
def test_account_permissions(client_for, role, get, patch):
    client = client_for(role)
    assert client.get(ACCOUNT).status_code == get
    assert client.patch(ACCOUNT, {"legal_name": "ACME"}, format="json").status_code == patch


@pytest.mark.parametrize(("country", "number", "stored"), [
    ("DE", "DE 136 695 976", "DE136695976"),
    ("FR", "FR40303265045", "FR40303265045"),
    ("GR", "EL094259216", "EL094259216"),
    ("GR", "094259216", "EL094259216"),
    ("GB", "XI980780684", "XI980780684"),
])
def test_patch_valid_vat_numbers(org, client_for, country, number, stored):
    response = client_for().patch(ACCOUNT, {"country": country, "vat_number": number, "legal_name": "ACME",
                                            "address": "Street 1"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["vat_number"] == stored
    assert response.json()["vat_status"] == "unchecked"  # format only; VIES sets `valid`
    assert AuditEvent.objects.filter(organization=org, action="billing_account.update").exists()


@pytest.mark.parametrize(("country", "number"), [
    ("DE", "DE136695977"),  # check digit
    ("DE", "FR40303265045"),  # another country's number
    ("GR", "GR094259216"),  # Greece uses EL
    ("US", "123456789"),  # no VAT numbers outside the EU/UK
    ("", "DE136695976"),
])
def test_patch_invalid_vat_numbers(client_for, country, number):
    response = client_for().patch(ACCOUNT, {"country": country, "vat_number": number}, format="json")
    assert response.status_code == 400
    assert "vat_number" in response.json()["errors"]


def test_patch_refuses_read_only_fields(client_for):
    for field, value in (("tax_exempt", True), ("vat_status", "valid"), ("currency", "EUR")):
        assert client_for().patch(ACCOUNT, {field: value}, format="json").status_code == 400


def test_subscription_switch(org, client_for):
    deployment = DeploymentFactory(organization=org)
    url = f"/api/v1/deployments/{deployment.id}/subscription"
    response = client_for(Role.VIEWER).get(url)
    assert response.status_code == 403
    response = client_for(Role.BILLING).get(url)
    assert response.status_code == 200 and response.json()["mode"] == "hourly"
    assert client_for(Role.DEVELOPER).post(f"{url}/switch-to-annual", {"renew": True}, format="json").status_code == 403
    now = datetime(2026, 2, 29 - 1, 10, tzinfo=UTC)
    with time_machine.travel(now, tick=False):
        response = client_for(Role.BILLING).post(f"{url}/switch-to-annual", {"renew": True}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["mode"] == "annual" and body["renews"] is True and body["annual_price"] == "1340.00"
    assert body["term_end"].startswith("2027-02-28")
    assert AnnualCharge.objects.filter(deployment=deployment).count() == 1
    again = client_for().post(f"{url}/switch-to-annual", {"renew": False}, format="json")
    assert again.status_code == 409
    assert AnnualCharge.objects.filter(deployment=deployment).count() == 1


def test_switch_stops_hourly_metering_at_that_second(org, client_for):
    hour = datetime(2026, 3, 10, 12, tzinfo=UTC)
    deployment = DeploymentFactory(organization=org, created_at=hour - timedelta(days=1))
    record_event(deployment, "running", hour - timedelta(days=1))
    with time_machine.travel(hour + timedelta(minutes=20), tick=False):
        response = client_for().post(f"/api/v1/deployments/{deployment.id}/subscription/switch-to-annual",
                                     {"renew": False}, format="json")
    assert response.status_code == 200
    usage_meter_hour(hour_start=hour)
    usage_meter_hour(hour_start=hour + timedelta(hours=1))
    assert list(UsageRecord.objects.filter(deployment=deployment).values_list("seconds", flat=True)) == [1200]


def test_usage_endpoint_shows_stopped_hours_at_the_stopped_rate(org, client_for):
    hour = datetime(2026, 3, 10, 12, tzinfo=UTC)
    deployment = DeploymentFactory(organization=org, created_at=hour - timedelta(days=1))
    record_event(deployment, "running", hour - timedelta(days=1))
    record_event(deployment, "stopping", hour + timedelta(minutes=30))
    record_event(deployment, "stopped", hour + timedelta(minutes=31))
    usage_meter_hour(hour_start=hour)
    usage_meter_hour(hour_start=hour + timedelta(hours=1))
    with time_machine.travel(hour + timedelta(hours=5), tick=False):
        body = client_for(Role.BILLING).get("/api/v1/billing/usage").json()
    [row] = body["deployments"]
    assert (row["seconds"], row["stopped_seconds"], row["stopped_hours"]) == (1800, 1740 + 3600, "1.4833")
    assert [(line["rate"], line["seconds"], line["hourly_price"]) for line in row["specs"]] == [
        ("running", 1800, "0.1800"), ("stopped", 5340, "0.0100")]
    assert row["amount"] == "0.10"  # 0.09 running + 0.01 stopped


def test_usage_endpoint(org, client_for):
    hour = datetime(2026, 3, 10, 12, tzinfo=UTC)
    deployment = DeploymentFactory(organization=org, created_at=hour - timedelta(days=1))
    record_event(deployment, "running", hour - timedelta(days=1))
    usage_meter_hour(hour_start=hour)
    usage_meter_hour(hour_start=hour + timedelta(hours=1))
    with time_machine.travel(hour + timedelta(hours=5), tick=False):
        assert client_for(Role.DEVELOPER).get("/api/v1/billing/usage").status_code == 403
        response = client_for(Role.BILLING).get("/api/v1/billing/usage")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["currency"] == "USD"
    assert body["deployments"][0]["deployment"] == deployment.id
    assert body["deployments"][0]["seconds"] == 7200
    assert body["deployments"][0]["amount"] == "0.36"
    assert body["current_month_estimate"] == "0.36"
    since = (hour + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    with time_machine.travel(hour + timedelta(hours=5), tick=False):
        response = client_for().get("/api/v1/billing/usage", {"since": since})
    assert response.json()["deployments"][0]["seconds"] == 3600
    assert client_for().get("/api/v1/billing/usage", {"since": "nonsense"}).status_code == 400


def test_invoices_list_and_detail_are_scoped(org, client_for):
    mine = InvoiceFactory(organization=org)
    InvoiceFactory()  # another organization's
    response = client_for(Role.BILLING).get("/api/v1/invoices")
    assert response.status_code == 200
    assert [i["id"] for i in response.json()["results"]] == [mine.id]
    detail = client_for(Role.BILLING).get(reverse("api:invoice-detail", kwargs={"pk": mine.id}))
    assert detail.status_code == 200
    assert detail.json()["total"] == "11.90" and detail.json()["currency"] == "USD"
    assert client_for(Role.VIEWER).get("/api/v1/invoices").status_code == 403


def test_vat_status_valid_only_from_vies(org, client_for):
    client_for().patch(ACCOUNT, {"country": "FR", "vat_number": "FR40303265045"}, format="json")
    account = BillingAccount.objects.get(organization=org)
    account.vat_status = VatStatus.VALID  # what a VIES confirmation would do
    account.save()
    # Re-sending the same number keeps the confirmation; a different number resets it.
    client_for().patch(ACCOUNT, {"vat_number": "FR 40 303265045"}, format="json")
    assert BillingAccount.objects.get(organization=org).vat_status == VatStatus.VALID
    client_for().patch(ACCOUNT, {"country": "DE", "vat_number": "DE136695976"}, format="json")
    assert BillingAccount.objects.get(organization=org).vat_status == VatStatus.UNCHECKED


def test_invoice_pdf(org, client_for):
    invoice = InvoiceFactory(organization=org, vat_note="Reverse charge: (test) \\ é")
    invoice.lines.create(position=1, description="broker (dep_x), Basic 1K, hourly", quantity=10, unit="hour",
                         unit_price="0.18", amount="1.80")
    response = client_for(Role.BILLING).get(f"/api/v1/invoices/{invoice.id}.pdf")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    body = response.content
    assert body.startswith(b"%PDF-1.4") and body.rstrip().endswith(b"%%EOF")
    assert invoice.number.encode() in body and b"Reverse charge: \\(test\\)" in body
    assert client_for(Role.VIEWER).get(f"/api/v1/invoices/{invoice.id}.pdf").status_code == 403
    assert client_for().get(f"/api/v1/invoices/{InvoiceFactory().id}.pdf").status_code == 404
