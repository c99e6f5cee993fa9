"""Countries: one ISO 3166-1 alpha-2 list behind the console's picker and every server-side check.

"Germany" used to become "GE" (Georgia) in a two-character text field, and "XX" passed a two-letter regex.
"""

from __future__ import annotations

import pytest
from django.test import Client

from billing.models import BillingAccount
from controlplane import countries
from projects.models import Organization
from projects.roles import Role
from projects.tests.factories import OrganizationFactory, make_api_key
from tests.support import console_login, console_page, console_url

pytestmark = pytest.mark.django_db

SIGNUP = {"email": "ada@example.com", "password": "a-long-enough-passphrase", "organization_name": "Acme",
          "site": "global"}
BAD = [("XX", "not an ISO 3166-1"), ("Germany", "DE for Germany"), ("germany", "DE for Germany"), ("D", "")]


def test_the_list_holds_iso_codes_with_names():
    names = countries.country_names()
    assert len(names) == 249
    assert names["DE"] == "Germany" and names["GE"] == "Georgia"
    assert "XX" not in names and "EU" not in names
    assert ("DE", "Germany (DE)") in countries.country_choices()
    assert countries.country_code_clean(" de ") == "DE"


# --- API ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("country", "message"), BAD)
def test_api_signup_refuses_unknown_countries_with_a_field_error(anon, country, message):
    response = anon.post("/api/v1/signup", SIGNUP | {"country": country}, format="json")
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert message in " ".join(response.json()["errors"]["country"])
    assert not Organization.objects.filter(name="Acme").exists()


def test_api_signup_takes_a_lower_case_code(anon):
    response = anon.post("/api/v1/signup", SIGNUP | {"country": "fr"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["organization"]["country"] == "FR"


@pytest.mark.parametrize(("country", "message"), BAD)
def test_api_billing_account_refuses_unknown_countries(make_client, country, message):
    organization = OrganizationFactory(country="DE")
    _, secret = make_api_key(organization, role=Role.BILLING)
    response = make_client(secret).patch("/api/v1/billing/account", {"country": country}, format="json")
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert message in " ".join(response.json()["errors"]["country"])
    assert not BillingAccount.objects.filter(organization=organization).exclude(country="").exists()


def test_api_billing_account_takes_a_code_and_may_clear_it(make_client):
    organization = OrganizationFactory(country="DE")
    _, secret = make_api_key(organization, role=Role.BILLING)
    client = make_client(secret)
    assert client.patch("/api/v1/billing/account", {"country": "at"}, format="json").json()["country"] == "AT"
    assert client.patch("/api/v1/billing/account", {"country": ""}, format="json").json()["country"] == ""


def test_api_organization_patch_refuses_unknown_countries(make_client):
    organization = OrganizationFactory(country="DE")
    _, secret = make_api_key(organization, role=Role.OWNER)
    response = make_client(secret).patch("/api/v1/organization", {"country": "XX"}, format="json")
    assert response.status_code == 400
    assert "country" in response.json()["errors"]
    organization.refresh_from_db()
    assert organization.country == "DE"


# --- console ------------------------------------------------------------------------------------------
def test_console_signup_offers_a_country_picker():
    html = Client().get(console_url("signup")).content.decode()
    assert '<select name="country"' in html
    assert '<option value="DE">Germany (DE)</option>' in html
    assert '<option value="GE">Georgia (GE)</option>' in html


@pytest.mark.parametrize("country", ["XX", "Germany", "GE ORGIA"])
def test_console_signup_refuses_unknown_countries(country):
    response = Client().post(console_url("signup"), SIGNUP | {"country": country})
    assert response.status_code == 400
    assert "country" in response.context["form"].errors
    assert not Organization.objects.filter(name="Acme").exists()


def test_console_signup_stores_the_picked_country():
    response = Client().post(console_url("signup"), SIGNUP | {"country": "GE"})
    assert response.status_code == 302
    assert Organization.objects.get(name="Acme").country == "GE"


def test_console_billing_form_is_a_picker_prefilled_with_the_signup_country():
    client, member = console_login(Role.BILLING, organization__country="AT")
    html = console_page(client, "billing-account")
    assert '<select name="country"' in html
    assert '<option value="AT" selected>Austria (AT)</option>' in html


def test_console_billing_form_shows_the_accounts_own_country_once_set():
    client, member = console_login(Role.BILLING, organization__country="AT")
    BillingAccount.objects.create(organization=member.organization, country="FR")
    assert '<option value="FR" selected>France (FR)</option>' in console_page(client, "billing-account")


@pytest.mark.parametrize("country", ["XX", "Germany"])
def test_console_billing_form_refuses_unknown_countries(country):
    client, member = console_login(Role.BILLING)
    response = client.post(console_url("billing-account"), {"legal_name": "Acme", "country": country})
    assert response.status_code == 400
    assert "country" in response.context["form"].errors
    assert not BillingAccount.objects.filter(organization=member.organization, legal_name="Acme").exists()


def test_ops_admin_refuses_unknown_countries():
    organization = OrganizationFactory(country="DE")
    organization.country = "XX"
    with pytest.raises(Exception, match="ISO 3166-1"):
        organization.full_clean()
