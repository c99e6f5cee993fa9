from __future__ import annotations

import pytest
from django.contrib.admin.utils import quote  # ids contain _, which the admin escapes
from django.test import Client

from billing.models import BillingAccount
from billing.tests.factories import BillingAccountFactory, BudgetFactory, InvoiceFactory
from projects.tests.factories import operator_user

pytestmark = pytest.mark.django_db


def test_operators_see_billing_and_set_tax_exempt():
    staff = operator_user()
    client = Client()
    client.force_login(staff)
    invoice = InvoiceFactory()
    account = BillingAccountFactory(organization=invoice.organization)
    budget = BudgetFactory(organization=invoice.organization)
    for url in ("/ops/billing/billingaccount/", "/ops/billing/invoice/",
                f"/ops/billing/invoice/{quote(invoice.pk)}/change/",
                "/ops/billing/subscription/", "/ops/billing/usagerecord/", "/ops/billing/budget/",
                f"/ops/billing/budget/{quote(budget.pk)}/change/"):
        assert client.get(url).status_code == 200, url
    response = client.post("/ops/billing/billingaccount/", {"action": "mark_tax_exempt",
                                                             "_selected_action": [account.pk]})
    assert response.status_code == 302
    assert BillingAccount.objects.get(pk=account.pk).tax_exempt is True
