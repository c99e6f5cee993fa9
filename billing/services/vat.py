"""VIES checks of VAT numbers (worker side): the verdict recorded on the billing account."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing import selectors, vies
from billing.models import (
    BillingAccount,
    VatStatus,
)
from projects.audit import audit_record
from projects.tenancy import Principal


# --- VAT numbers in VIES ---------------------------------------------------------------------------
class VatCheckOutcome:
    VALID = "valid"
    INVALID = "invalid"
    UNAVAILABLE = "unavailable"  # VIES down, busy or slow: retry soon
    ERROR = "error"  # VIES refused the request: retried only by the hourly recheck
    SKIPPED = "skipped"  # nothing to check: no number, GB, already decided, VIES offline, account gone
    STALE = "stale"  # the number changed during the call; its own check is queued


def vat_number_check(*, account_id: str, force: bool = False, now: datetime | None = None) -> str:
    """Checks an account's VAT number in VIES and records the verdict; returns a ``VatCheckOutcome``.

    Idempotent: an account already ``valid``/``invalid`` for its current number is skipped unless ``force``.
    VIES trouble leaves the status as it was (``unchecked`` for a new number: VAT is charged meanwhile) and
    records the error. The call is made outside any transaction, so no row stays locked while VIES is slow.
    """
    account = BillingAccount.objects.filter(pk=account_id).first()
    if account is None or not account.vat_number or not settings.VIES_URL or not vies.in_vies(account.vat_number):
        return VatCheckOutcome.SKIPPED
    if account.vat_status != VatStatus.UNCHECKED and not force:
        return VatCheckOutcome.SKIPPED
    number = account.vat_number
    answer: vies.ViesAnswer | None = None
    failure: vies.ViesError | None = None
    try:
        answer = vies.check_vat_number(number)
    except vies.ViesError as exc:
        failure = exc
    now = now or timezone.now()
    with transaction.atomic():
        account = BillingAccount.objects.select_for_update().select_related("organization").get(pk=account_id)
        if account.vat_number != number:
            return VatCheckOutcome.STALE
        if account.vat_status != VatStatus.UNCHECKED and not force:
            return VatCheckOutcome.SKIPPED  # a duplicate task recorded the verdict while we waited for VIES
        account.vat_check_attempted_at = now
        if failure is not None:
            account.vat_check_error = failure.message[:300]
            account.save(update_fields=["vat_check_attempted_at", "vat_check_error", "updated_at"])
            return VatCheckOutcome.UNAVAILABLE if failure.transient else VatCheckOutcome.ERROR
        assert answer is not None  # for the type checker: no failure means an answer
        before = account.vat_status
        account.vat_status = VatStatus.VALID if answer.valid else VatStatus.INVALID
        account.vat_checked_at = now
        account.vat_consultation_number = answer.consultation_number
        account.vat_registered_name = answer.registered_name
        account.vat_check_error = ""
        account.save(update_fields=["vat_status", "vat_checked_at", "vat_check_attempted_at",
                                    "vat_consultation_number", "vat_registered_name", "vat_check_error",
                                    "updated_at"])
        audit_record(principal=Principal.for_system(account.organization), action="billing_account.vat_check",
                     target=account, changes={"vat_number": number, "vat_status": [before, account.vat_status],
                                              "consultation_number": answer.consultation_number,
                                              "registered_name": answer.registered_name})
    return account.vat_status


def vat_numbers_check_now(*, time_budget_s: float = 120.0) -> dict[str, int]:
    """Checks every ``unchecked`` number right away (before invoicing), within a time budget: with VIES
    down, each call may take the whole timeout, and invoicing must not wait for hours."""
    started = time.monotonic()
    outcomes: dict[str, int] = defaultdict(int)
    for account_id in selectors.vat_numbers_to_check():
        if time.monotonic() - started > time_budget_s:
            break
        outcomes[vat_number_check(account_id=account_id)] += 1
    return dict(outcomes)
