"""VAT numbers checked in VIES: over real HTTP through the guarded client to a local VIES stand-in."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.test import override_settings

from billing import tasks
from billing.models import BillingAccount, VatStatus
from billing.services.invoicing import invoice_generate
from billing.services.vat import VatCheckOutcome, vat_number_check
from billing.tests.factories import BillingAccountFactory
from billing.tests.standins import ViesStandIn
from billing.tests.test_invoices import usage
from deployments.tests.factories import DeploymentFactory
from projects.models import AuditEvent
from projects.roles import Role
from projects.tests.factories import OrganizationFactory, make_api_key, operator_user
from tests.support import eager_tasks

pytestmark = pytest.mark.django_db

ACCOUNT = "/api/v1/billing/account"
REGISTERED = {"DE136695976": "Bundeszentralamt Test GmbH", "FR40303265045": "SOCIETE TEST SA",
              "EL094259216": "ELLINIKI TEST AE", "XI980780684": "NI TEST LTD"}


@pytest.fixture
def vies():
    with ViesStandIn(REGISTERED) as stand_in, override_settings(
            VIES_URL=stand_in.url, VIES_REQUESTER_VAT="DE 811 907 980", VIES_TIMEOUT_S=3.0,
            OUTBOUND_HTTP_ALLOW_LOOPBACK=True), eager_tasks(propagate=False):
        yield stand_in


@pytest.fixture
def api(make_client):
    org = OrganizationFactory(country="FR")
    _, secret = make_api_key(org, role=Role.BILLING)
    client = make_client(secret)
    client.organization = org
    return client


def set_number(api, django_capture_on_commit_callbacks, country: str, number: str) -> dict:
    with django_capture_on_commit_callbacks(execute=True):
        response = api.patch(ACCOUNT, {"country": country, "vat_number": number}, format="json")
    assert response.status_code == 200, response.json()
    return api.get(ACCOUNT).json()


def account_with(number: str, country: str) -> BillingAccount:
    org = OrganizationFactory(country=country)
    return BillingAccountFactory(organization=org, country=country, vat_number=number)


def test_valid_number_is_confirmed_after_the_change_with_a_consultation_number(vies, api,
                                                                               django_capture_on_commit_callbacks):
    body = set_number(api, django_capture_on_commit_callbacks, "FR", "FR 40 303 265 045")
    assert body["vat_status"] == "valid"
    assert body["vat_consultation_number"] == "WAPIAAAAZ0000001"
    assert body["vat_registered_name"] == "SOCIETE TEST SA"
    assert body["vat_checked_at"] and body["vat_check_error"] == ""
    assert vies.requests == [{"countryCode": "FR", "vatNumber": "40303265045", "requesterMemberStateCode": "DE",
                              "requesterNumber": "811907980"}]
    event = AuditEvent.objects.get(action="billing_account.vat_check")
    assert event.changes["vat_status"] == ["unchecked", "valid"]
    # Saving the same number again checks nothing (and keeps the verdict).
    body = set_number(api, django_capture_on_commit_callbacks, "FR", "FR40303265045")
    assert len(vies.requests) == 1 and body["vat_status"] == "valid"


def test_invalid_number(vies, api, django_capture_on_commit_callbacks):
    body = set_number(api, django_capture_on_commit_callbacks, "DE", "DE129273398")  # good check digit, unknown
    assert body["vat_status"] == "invalid"
    assert body["vat_registered_name"] == ""  # "---" is VIES for "not disclosed"
    assert body["vat_checked_at"]


def test_a_changed_number_resets_what_vies_said(vies, api, django_capture_on_commit_callbacks):
    set_number(api, django_capture_on_commit_callbacks, "FR", "FR40303265045")
    vies.script = ["MS_UNAVAILABLE"] * 10
    body = set_number(api, django_capture_on_commit_callbacks, "DE", "DE136695976")
    assert body["vat_status"] == "unchecked"
    assert body["vat_checked_at"] is None and body["vat_consultation_number"] == ""
    assert body["vat_registered_name"] == "" and "MS_UNAVAILABLE" in body["vat_check_error"]


def test_unavailable_is_retried_with_backoff_then_valid(vies, api, django_capture_on_commit_callbacks):
    vies.script = ["MS_UNAVAILABLE", "userError:GLOBAL_MAX_CONCURRENT_REQ", "http500"]
    body = set_number(api, django_capture_on_commit_callbacks, "FR", "FR40303265045")
    assert len(vies.requests) == 4  # three failures retried (eagerly here), then the verdict
    assert body["vat_status"] == "valid" and body["vat_check_error"] == ""


def test_still_unavailable_after_the_retries_waits_for_the_hourly_recheck(vies, api,
                                                                          django_capture_on_commit_callbacks):
    vies.script = ["SERVICE_UNAVAILABLE"] * 5  # the first try and the 4 retries of VIES_RETRY_SCHEDULE_S
    body = set_number(api, django_capture_on_commit_callbacks, "FR", "FR40303265045")
    assert len(vies.requests) == 5
    assert body["vat_status"] == "unchecked" and "SERVICE_UNAVAILABLE" in body["vat_check_error"]
    assert body["vat_check_attempted_at"] and body["vat_checked_at"] is None
    assert tasks.vat_numbers_recheck() == 0  # attempted just now: not due yet
    with override_settings(VIES_RECHECK_AFTER_S=0):
        assert tasks.vat_numbers_recheck() == 1
    body = api.get(ACCOUNT).json()
    assert body["vat_status"] == "valid" and body["vat_check_error"] == ""
    with override_settings(VIES_RECHECK_AFTER_S=0):
        assert tasks.vat_numbers_recheck() == 0  # decided: nothing left to check


@pytest.mark.parametrize(("step", "error"), [
    ("slow", "timeout"),
    ("huge", "too_large"),
    ("garbage", "without a JSON object"),
    ("TIMEOUT", "TIMEOUT"),
    ("MS_MAX_CONCURRENT_REQ", "MS_MAX_CONCURRENT_REQ"),
])
def test_vies_trouble_leaves_the_number_unchecked(vies, step, error):
    account = account_with("FR40303265045", "FR")
    vies.script = [step]
    vies.slow_s = 2.0
    with override_settings(VIES_TIMEOUT_S=0.5):
        outcome = vat_number_check(account_id=account.pk)
    account.refresh_from_db()
    assert outcome == VatCheckOutcome.UNAVAILABLE
    assert account.vat_status == VatStatus.UNCHECKED and error in account.vat_check_error
    assert account.vat_checked_at is None and account.vat_check_attempted_at is not None


@pytest.mark.parametrize("step", ["<html>SECRET upstream db01 failed</html>", "userError:SECRET db01 trace"])
def test_a_code_that_is_not_a_vies_code_is_not_repeated_to_the_customer(vies, step):
    account = account_with("FR40303265045", "FR")
    vies.script = [step]
    vat_number_check(account_id=account.pk)
    account.refresh_from_db()
    assert account.vat_status == VatStatus.UNCHECKED
    assert "SECRET" not in account.vat_check_error and "UNKNOWN_ERROR" in account.vat_check_error


def test_a_refused_request_is_not_retried_quickly(vies):
    account = account_with("FR40303265045", "FR")
    vies.script = ["INVALID_REQUESTER_INFO"]
    assert tasks.vat_number_check.delay(account.pk).get() == VatCheckOutcome.ERROR
    assert len(vies.requests) == 1
    account.refresh_from_db()
    assert account.vat_status == VatStatus.UNCHECKED and "INVALID_REQUESTER_INFO" in account.vat_check_error


def test_invalid_input_is_a_verdict(vies):
    account = account_with("FR40303265045", "FR")
    vies.script = ["INVALID_INPUT"]
    assert vat_number_check(account_id=account.pk) == VatStatus.INVALID


def test_greece_is_el_in_vies(vies, api, django_capture_on_commit_callbacks):
    body = set_number(api, django_capture_on_commit_callbacks, "GR", "094259216")
    assert vies.requests[0]["countryCode"] == "EL" and vies.requests[0]["vatNumber"] == "094259216"
    assert body["vat_number"] == "EL094259216" and body["vat_status"] == "valid"


def test_northern_ireland_is_checked_great_britain_is_not(vies, api, django_capture_on_commit_callbacks):
    body = set_number(api, django_capture_on_commit_callbacks, "GB", "XI980780684")
    assert vies.requests[-1]["countryCode"] == "XI" and body["vat_status"] == "valid"
    body = set_number(api, django_capture_on_commit_callbacks, "GB", "GB980780684")
    assert len(vies.requests) == 1  # GB numbers are not in VIES
    assert body["vat_status"] == "unchecked" and body["vat_check_error"] == ""
    with override_settings(VIES_RECHECK_AFTER_S=0):
        assert tasks.vat_numbers_recheck() == 0


def test_offline_without_vies_url(api, django_capture_on_commit_callbacks):
    with ViesStandIn(REGISTERED) as stand_in, override_settings(VIES_URL="", OUTBOUND_HTTP_ALLOW_LOOPBACK=True), \
            eager_tasks(propagate=False):
        body = set_number(api, django_capture_on_commit_callbacks, "FR", "FR40303265045")
        assert tasks.vat_numbers_recheck() == 0
    assert stand_in.requests == [] and body["vat_status"] == "unchecked"


def test_a_decided_number_is_checked_again_only_when_forced(vies):
    account = account_with("FR40303265045", "FR")
    assert vat_number_check(account_id=account.pk) == VatStatus.VALID
    assert vat_number_check(account_id=account.pk) == VatCheckOutcome.SKIPPED
    assert len(vies.requests) == 1
    vies.script = ["MS_UNAVAILABLE"]
    assert vat_number_check(account_id=account.pk, force=True) == VatCheckOutcome.UNAVAILABLE
    account.refresh_from_db()
    assert account.vat_status == VatStatus.VALID  # VIES being down revokes nothing
    assert account.vat_consultation_number == "WAPIAAAAZ0000001"
    del vies.registered["FR40303265045"]  # deregistered since
    assert vat_number_check(account_id=account.pk, force=True) == VatStatus.INVALID


def test_the_invoice_before_the_check_has_vat_and_after_a_valid_check_the_reverse_charge(vies):
    account = account_with("FR40303265045", "FR")
    deployment = DeploymentFactory(organization=account.organization)
    usage(deployment, hours=10)
    usage(deployment, hours=10, start=datetime(2026, 4, 3, tzinfo=UTC))
    with time_machine.travel(datetime(2026, 4, 1, 0, 30, tzinfo=UTC), tick=False):
        march = invoice_generate(account=account, period_start=date(2026, 3, 1))
    assert march.vat_rate == 20 and march.vat_note == ""
    assert vat_number_check(account_id=account.pk) == VatStatus.VALID
    with time_machine.travel(datetime(2026, 5, 1, 0, 30, tzinfo=UTC), tick=False):
        april = invoice_generate(account=account, period_start=date(2026, 4, 1))
    assert april.vat_rate == 0 and april.vat_note.startswith("Reverse charge")


def test_monthly_invoicing_checks_pending_numbers_first(vies):
    account = account_with("FR40303265045", "FR")
    started = datetime(2026, 2, 28, 20, tzinfo=UTC)
    deployment = DeploymentFactory(organization=account.organization, created_at=started)
    from billing.tests.factories import record_event

    record_event(deployment, "running", started)
    with time_machine.travel(datetime(2026, 3, 1, 0, 30, tzinfo=UTC) + timedelta(seconds=1), tick=False):
        assert tasks.invoices_generate_previous_month() == 1
    account.refresh_from_db()
    assert account.vat_status == VatStatus.VALID
    invoice = account.invoices.get()
    assert invoice.vat_rate == 0 and invoice.vat_note.startswith("Reverse charge")


def test_operators_can_ask_vies_again(vies, django_capture_on_commit_callbacks):
    from django.test import Client


    account = account_with("FR40303265045", "FR")
    account.vat_status = VatStatus.INVALID
    account.save()
    gb = account_with("GB980780684", "GB")
    staff = operator_user()
    client = Client()
    client.force_login(staff)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/ops/billing/billingaccount/", {"action": "recheck_vat_number",
                                                                 "_selected_action": [account.pk, gb.pk]})
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.vat_status == VatStatus.VALID and len(vies.requests) == 1
    assert AuditEvent.objects.filter(action="billing_account.vat_recheck_request").count() == 1
