"""The dunning mails over real SMTP (aiosmtpd on loopback): warning, suspension, payment received."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from billing import emails
from billing.tests.factories import BillingAccountFactory, InvoiceFactory
from projects.roles import Role
from projects.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def test_dunning_mails_reach_owners_and_billing_members_over_smtp(smtp):
    owner = MembershipFactory(role=Role.OWNER)
    org = owner.organization
    billing = MembershipFactory(organization=org, role=Role.BILLING)
    MembershipFactory(organization=org, role=Role.VIEWER)
    account = BillingAccountFactory(organization=org)
    invoice = InvoiceFactory(organization=org, account=account, last_payment_error="Your card was declined.")
    stop_on = timezone.now() + timedelta(days=14)
    assert emails.send_payment_failed(account=account, invoices=[invoice], stop_on=stop_on) == 1
    assert emails.send_suspended(account=account, invoices=[invoice], stopped=["dep_abc"]) == 1
    assert emails.send_payment_restored(account=account, was_suspended=True) == 1
    assert len(smtp.messages) == 3
    expected = sorted([owner.user.email, billing.user.email])
    (to1, warning), (_, suspended), (_, restored) = smtp.messages
    assert sorted(to1) == expected
    text = warning.get_body(preferencelist=("plain",)).get_content()
    assert invoice.number in text and "11.90 USD" in text and stop_on.strftime("%Y-%m-%d") in text
    assert "Your card was declined." in text
    assert warning.get_body(preferencelist=("html",)) is not None
    assert "dep_abc" in suspended.get_body(preferencelist=("plain",)).get_content()
    assert "start them again" in restored.get_body(preferencelist=("plain",)).get_content()
