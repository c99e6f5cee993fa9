"""Billing account: its details, VAT number format checks, operator-only changes, queueing VIES checks."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from stdnum.eu import vat as eu_vat
from stdnum.gb import vat as gb_vat
from stdnum.util import clean

from billing import money, vies
from billing.models import (
    BillingAccount,
    VatStatus,
)
from controlplane import countries, errors
from controlplane.db import lock_row
from controlplane.queue import enqueue_on_commit
from projects.audit import audit_record
from projects.tenancy import Principal


# --- billing account --------------------------------------------------------------------------------
def vat_number_normalize(*, country: str, vat_number: str) -> str:
    """The compact VAT number with its prefix (``EL`` for Greece, ``GB``/``XI`` for the UK), checked for format
    and check digit. Raises ValidationFailed on a bad number or one that does not belong to ``country``."""
    if not country:
        raise errors.field_invalid("vat_number", "Set the country before the VAT number.")
    if country not in money.eu_member_states() and country != "GB":
        raise errors.field_invalid("vat_number",
                                   "VAT numbers are recorded for customers in the EU and the United Kingdom only.")
    compact = clean(vat_number, " -./,:").upper().strip()
    prefixes = money.vat_prefixes(country)
    if compact[:1].isdigit():
        compact = prefixes[0] + compact
    if compact[:2] not in prefixes:
        raise errors.field_invalid("vat_number", f"A VAT number of {country} starts with {' or '.join(prefixes)}.")
    valid = gb_vat.is_valid(compact[2:]) if compact[:2] == "GB" else eu_vat.is_valid(compact)
    if not valid:
        raise errors.field_invalid("vat_number", "This is not a valid VAT number (format or check digit).")
    return compact


@transaction.atomic
def billing_account_update(*, principal: Principal, legal_name: str | None = None, address: str | None = None,
                           country: str | None = None, vat_number: str | None = None) -> BillingAccount:
    account, _ = BillingAccount.objects.get_or_create(organization=principal.organization)
    account = lock_row(BillingAccount, account.pk)
    before = {f: getattr(account, f) for f in ("legal_name", "address", "country", "vat_number", "vat_status")}
    if legal_name is not None:
        account.legal_name = legal_name.strip()
    if address is not None:
        account.address = address.strip()
    if country is not None:
        country = countries.country_code_clean(country) if country.strip() else ""
        account.country = country
    number = account.vat_number if vat_number is None else vat_number.strip()
    if number and (vat_number is not None or country is not None):
        normalized = vat_number_normalize(country=account.country, vat_number=number)
        if normalized != account.vat_number:
            # Format and check digit only; the VIES check queued below is what sets `valid` or `invalid`.
            _vat_check_reset(account)
        account.vat_number = normalized
    elif not number:
        account.vat_number = ""
        _vat_check_reset(account)
    account.full_clean()
    account.save()
    changes = {f: [before[f], getattr(account, f)] for f in before if before[f] != getattr(account, f)}
    if changes:
        audit_record(principal=principal, action="billing_account.update", target=account, changes=changes)
    if (account.vat_number and account.vat_number != before["vat_number"] and settings.VIES_URL
            and vies.in_vies(account.vat_number)):
        _vat_check_enqueue(account.pk)
    return account


def _vat_check_reset(account: BillingAccount) -> None:
    """What VIES said about the previous number says nothing about a new one."""
    account.vat_status = VatStatus.UNCHECKED
    account.vat_checked_at = account.vat_check_attempted_at = None
    account.vat_consultation_number = account.vat_registered_name = account.vat_check_error = ""


def _vat_check_enqueue(account_id: str, *, force: bool = False) -> None:
    # On commit: a rolled-back change queues nothing, and the worker sees the committed number.
    enqueue_on_commit("billing.tasks.vat_number_check", account_id, force)


@transaction.atomic
def vat_number_recheck_request(*, principal: Principal, account: BillingAccount) -> bool:
    """Operators: asks VIES again about the account's number, even one already decided (a number may be
    deregistered later). Returns False when there is nothing VIES could check."""
    if not account.vat_number or not settings.VIES_URL or not vies.in_vies(account.vat_number):
        return False
    audit_record(principal=principal, action="billing_account.vat_recheck_request", target=account,
                 changes={"vat_number": account.vat_number}, organization=account.organization)
    _vat_check_enqueue(account.pk, force=True)
    return True


# --- operators --------------------------------------------------------------------------------------
def account_locked(account_id: str) -> BillingAccount:
    return BillingAccount.objects.select_for_update(of=("self",)).select_related("organization").get(pk=account_id)


@transaction.atomic
def billing_account_operator_update(*, principal: Principal, account: BillingAccount, tax_exempt: bool | None = None,
                                    vat_status: str | None = None) -> BillingAccount:
    """Operator-only changes: the tax-exempt flag and a VAT status confirmed outside the API (e.g. in VIES)."""
    account = lock_row(BillingAccount, account.pk)
    before = {"tax_exempt": account.tax_exempt, "vat_status": account.vat_status}
    if tax_exempt is not None:
        account.tax_exempt = tax_exempt
    if vat_status is not None:
        if vat_status == VatStatus.VALID and not account.vat_number:
            raise errors.Conflict("The account has no VAT number.")
        account.vat_status = vat_status
    account.full_clean()
    account.save()
    changes = {f: [before[f], getattr(account, f)] for f in before if before[f] != getattr(account, f)}
    if changes:
        audit_record(principal=principal, action="billing_account.operator_update", target=account, changes=changes,
                     organization=account.organization)
    return account
