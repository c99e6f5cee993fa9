"""Dunning: warnings, suspension and recovery of accounts with unpaid invoices."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from billing import emails, selectors
from billing.models import (
    BillingAccount,
)
from billing.services import accounts
from controlplane import errors
from deployments.facade import deployment_stop
from deployments.models import Deployment
from deployments.models import DeploymentStatus as S
from projects.audit import audit_record
from projects.tenancy import Principal


# --- dunning -------------------------------------------------------------------------------------
def dunning_warn(*, account_id: str) -> bool:
    """Mails the payment-failed warning to the owners and billing members, once per unpaid episode."""
    with transaction.atomic():
        account = accounts.account_locked(account_id)
        invoices = list(selectors.invoices_failed_unpaid(account=account))
        if account.payment_failed_at is None or account.dunning_warned_at is not None or not invoices:
            return False
        emails.send_payment_failed(account=account, invoices=invoices, stop_on=selectors.dunning_stop_date(account))
        account.dunning_warned_at = timezone.now()
        account.save(update_fields=["dunning_warned_at", "updated_at"])
        audit_record(principal=Principal.for_system(account.organization), action="billing_account.dunning_warn",
                     target=account, changes={"invoices": [i.number for i in invoices],
                                              "stop_on": selectors.dunning_stop_date(account).isoformat()})
    return True


def dunning_suspend(*, account_id: str, now: datetime | None = None) -> list[str]:
    """After the grace period: stops (never deletes) every running deployment of the organization.

    Rerun while suspended, it stops deployments that were mid-operation last time. Returns the ids stopped.
    """
    now = now or timezone.now()
    with transaction.atomic():
        account = accounts.account_locked(account_id)
        stop_on = selectors.dunning_stop_date(account)
        if stop_on is None or stop_on > now or not selectors.invoices_failed_unpaid(account=account).exists():
            return []
        first = account.suspended_at is None
        if first:
            account.suspended_at = now
            account.save(update_fields=["suspended_at", "updated_at"])
    org = account.organization
    system = Principal.for_system(org)
    stopped = []
    for deployment in Deployment.objects.filter(organization=org, status=S.RUNNING):
        try:
            deployment_stop(principal=system, deployment=deployment)
        except errors.Conflict:
            continue  # it moved on meanwhile; the next run looks again
        stopped.append(deployment.pk)
    if first or stopped:
        audit_record(principal=system, action="billing_account.suspend", target=account,
                     changes={"stopped": stopped, "first": first})
    if first:
        emails.send_suspended(account=account, invoices=list(selectors.invoices_failed_unpaid(account=account)),
                              stopped=stopped)
    return stopped


def dunning_clear_if_settled(*, account_id: str) -> bool:
    """Clears the dunning state once no failed invoice is unpaid; deployments are not started again, the
    customer is told they can start them."""
    account = accounts.account_locked(account_id)
    if account.payment_failed_at is None and account.suspended_at is None and account.dunning_warned_at is None:
        return False
    if selectors.invoices_failed_unpaid(account=account).exists():
        return False
    was_suspended = account.suspended_at is not None
    before = {"payment_failed_at": account.payment_failed_at, "suspended_at": account.suspended_at}
    account.payment_failed_at = account.dunning_warned_at = account.suspended_at = None
    account.save(update_fields=["payment_failed_at", "dunning_warned_at", "suspended_at", "updated_at"])
    audit_record(principal=Principal.for_system(account.organization), action="billing_account.dunning_clear",
                 target=account, changes={k: v.isoformat() if v else None for k, v in before.items()})
    transaction.on_commit(lambda: emails.send_payment_restored(account=account, was_suspended=was_suspended))
    return True


def dunning_run(*, now: datetime | None = None) -> dict[str, int]:
    """The beat job: warns whoever was not warned yet, suspends accounts past the grace period (and stops
    what is running while suspended), and clears accounts whose debt is settled. Idempotent."""
    now = now or timezone.now()
    counts = {"warned": 0, "stopped": 0, "cleared": 0}
    flagged = BillingAccount.objects.filter(payment_failed_at__isnull=False).values_list("pk", flat=True)
    for account_id in list(flagged):
        counts["warned"] += dunning_warn(account_id=account_id)
        counts["stopped"] += len(dunning_suspend(account_id=account_id, now=now))
    for account_id in list(BillingAccount.objects.filter(
            Q(payment_failed_at__isnull=False) | Q(suspended_at__isnull=False)).values_list("pk", flat=True)):
        with transaction.atomic():
            counts["cleared"] += dunning_clear_if_settled(account_id=account_id)
    return counts
