"""The billing read behind the ops overview: invoices by status over every organization."""

from __future__ import annotations

import pytest

from billing import facade
from billing.tests.factories import InvoiceFactory

pytestmark = pytest.mark.django_db


def test_invoice_status_counts_name_every_status():
    for status in ("open", "open", "paid", "uncollectible"):
        InvoiceFactory(status=status)
    assert facade.invoice_status_counts() == {"draft": 0, "open": 2, "paid": 1, "void": 0, "uncollectible": 1}
