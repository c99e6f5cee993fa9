"""Invoices are the organization's documents: whoever reads them needs a billing role (owner, admin, billing),
limited to projects or not; every other role gets 403 on the list, the detail and the PDF, API and console."""

from __future__ import annotations

import pytest
from django.test import Client

from billing.tests.factories import InvoiceFactory
from projects.roles import Role
from projects.tests.factories import MembershipFactory, ProjectFactory, make_api_key
from tests.support import console_url

pytestmark = pytest.mark.django_db

ROLES = [(Role.OWNER, 200), (Role.ADMIN, 200), (Role.BILLING, 200), (Role.DEVELOPER, 403), (Role.VIEWER, 403)]


def api_paths(invoice) -> list[str]:
    return ["/api/v1/invoices", f"/api/v1/invoices/{invoice.id}", f"/api/v1/invoices/{invoice.id}.pdf"]


@pytest.mark.parametrize("limited", [True, False])
@pytest.mark.parametrize(("role", "status"), ROLES)
def test_api_keys(org, make_client, role, status, limited):
    invoice = InvoiceFactory(organization=org)
    _, secret = make_api_key(org, role=role, projects=[ProjectFactory(organization=org)] if limited else [])
    api = make_client(secret)
    assert [api.get(path).status_code for path in api_paths(invoice)] == [status] * 3


@pytest.mark.parametrize("limited", [True, False])
@pytest.mark.parametrize(("role", "status"), ROLES)
def test_members_in_the_api_and_the_console(org, session_client, role, status, limited):
    invoice = InvoiceFactory(organization=org)
    member = MembershipFactory(organization=org, role=role,
                               projects=[ProjectFactory(organization=org)] if limited else [])
    api = session_client(member.user)
    assert [api.get(path).status_code for path in api_paths(invoice)] == [status] * 3
    console = Client()
    console.force_login(member.user)
    pages = [console_url("billing-invoices"), console_url("billing-invoice", invoice.id)]
    assert [console.get(page).status_code for page in pages] == [status] * 2
