"""The seams issue 12 added around billing: the period arithmetic the monthly job uses, and billing answering the
alerts hook that replaced alerts' import of billing."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from alerts import hooks as alert_hooks
from billing import periods, receivers
from billing.models import BillingAccount
from projects.tests.factories import OrganizationFactory


@pytest.mark.parametrize(("day", "expected"), [
    (date(2026, 1, 1), date(2025, 12, 1)),
    (date(2026, 1, 31), date(2025, 12, 1)),
    (date(2026, 3, 1), date(2026, 2, 1)),
    (date(2026, 12, 31), date(2026, 11, 1)),
])
def test_month_start_before(day, expected):
    assert periods.month_start_before(day) == expected


def test_billing_answers_the_payment_failures_hook():
    assert receivers.organization_payment_failures in alert_hooks.organization_payment_failures.receivers


@pytest.mark.django_db
def test_payment_failures_answer_names_only_the_organizations_asked_about():
    failed_at = datetime(2026, 3, 2, 8, tzinfo=UTC)
    failing, other_failing, fine = OrganizationFactory(), OrganizationFactory(), OrganizationFactory()
    BillingAccount.objects.create(organization=failing, payment_failed_at=failed_at)
    BillingAccount.objects.create(organization=other_failing, payment_failed_at=failed_at)
    BillingAccount.objects.create(organization=fine)
    answers = alert_hooks.organization_payment_failures.collect(organization_ids=[failing.id, fine.id])
    assert answers == [{failing.id: failed_at}]
