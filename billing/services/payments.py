"""Collecting invoices: PaymentIntents, their outcomes, retries of failed payments."""

from __future__ import annotations

from datetime import datetime, timedelta

import stripe
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing import stripe_gateway
from billing.models import (
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentStatus,
)
from billing.services import accounts, cards, dunning
from controlplane import locks
from controlplane.db import lock_row
from projects.audit import audit_record
from projects.tenancy import Principal


# --- collecting invoices -------------------------------------------------------------------------
def _next_retry(first_failed_at: datetime, failures: int) -> datetime | None:
    """Dunning schedule: days after the first failure (default 1, 3, 5); None once retries are used up."""
    days = settings.BILLING_DUNNING_RETRY_DAYS
    return first_failed_at + timedelta(days=days[failures - 1]) if failures <= len(days) else None


@transaction.atomic
def _payment_begin(*, invoice_id: str, force: bool) -> Payment | None:
    """Records the attempt before Stripe is called. A pending attempt (outage, crash) is reused as it is:
    same attempt number, same idempotency key, so Stripe never charges it twice."""
    invoice = Invoice.objects.select_for_update(of=("self",)).select_related("account").filter(pk=invoice_id).first()
    if invoice is None or invoice.status != InvoiceStatus.OPEN or invoice.total <= 0:
        return None
    last = invoice.payments.order_by("-attempt").first()
    if last is not None:
        if last.status == PaymentStatus.PENDING:
            return last
        if last.status != PaymentStatus.FAILED:
            return None  # succeeded, processing, or waiting for the customer
        due = invoice.next_payment_attempt_at is not None and invoice.next_payment_attempt_at <= timezone.now()
        if not (force or due):
            return None
    attempt = invoice.payment_attempts + 1
    payment = Payment.objects.create(
        organization_id=invoice.organization_id, invoice=invoice, attempt=attempt,
        idempotency_key=stripe_gateway.payment_key(invoice.pk, attempt), amount=invoice.total,
        currency=invoice.currency, stripe_payment_method_id=invoice.account.stripe_payment_method_id)
    invoice.payment_attempts = attempt
    invoice.next_payment_attempt_at = None
    invoice.save(update_fields=["payment_attempts", "next_payment_attempt_at"])
    return payment


def invoice_collect(*, invoice_id: str, force: bool = False) -> Payment | None:
    """Charges an open invoice to the account's default card, off-session; returns the attempt, or None when
    there is nothing to do (offline mode, paid, not due, another worker on it).

    Raises ``StripeUnavailable`` on an outage: the attempt stays pending and the retry reuses its key.
    """
    if not stripe_gateway.is_configured():
        return None  # offline mode: the invoice stays open here
    with locks.exclusive(f"invoice-collect:{invoice_id}", timeout=300) as acquired:
        if not acquired:
            return None
        payment = _payment_begin(invoice_id=invoice_id, force=force)
        if payment is None:
            return None
        invoice = Invoice.objects.select_related("account__organization").get(pk=invoice_id)
        account = invoice.account
        if not payment.stripe_payment_method_id:
            return payment_record_outcome(payment_id=payment.pk, status=PaymentStatus.FAILED,
                                          code="no_payment_method", message="No card on file.")
        customer_id = cards.stripe_customer_ensure(account=account)
        try:
            intent = stripe_gateway.client().v1.payment_intents.create(
                params={"amount": stripe_gateway.minor_units(payment.amount, payment.currency),
                        "currency": payment.currency.lower(), "customer": customer_id,
                        "payment_method": payment.stripe_payment_method_id, "off_session": True, "confirm": True,
                        "metadata": {"invoice": invoice.pk, "number": invoice.number, "payment": payment.pk,
                                     "attempt": str(payment.attempt)}},
                options={"idempotency_key": payment.idempotency_key})
        except stripe.CardError as exc:
            failed_intent = getattr(exc.error, "payment_intent", None) if exc.error else None
            return payment_record_outcome(
                payment_id=payment.pk, status=PaymentStatus.FAILED,
                intent_id=getattr(failed_intent, "id", "") or "", code=exc.code or "card_error",
                message=str(exc.user_message or exc)[:300])
        except stripe.StripeError as exc:
            if stripe_gateway.is_transient(exc):
                raise stripe_gateway.unavailable(exc) from exc
            # Our request or configuration is wrong, not the customer's card: no dunning. The attempt stays
            # pending; the beat job re-drives it and operators see it in the ops site.
            raise
        code, message = "", ""
        if intent.status == "requires_action":
            code, message = "authentication_required", "The bank asks the cardholder to authenticate this payment."
        return payment_record_outcome(payment_id=payment.pk, intent_id=intent.id, code=code, message=message,
                                      status=_INTENT_STATUS.get(intent.status, PaymentStatus.PROCESSING))


_INTENT_STATUS = {
    "succeeded": PaymentStatus.SUCCEEDED,
    "processing": PaymentStatus.PROCESSING,
    # Off-session, nobody is there to authenticate: a failure like a decline (the customer updates the card).
    "requires_action": PaymentStatus.FAILED,
    "requires_payment_method": PaymentStatus.FAILED,
    "canceled": PaymentStatus.FAILED,
}


@transaction.atomic
def payment_record_outcome(*, payment_id: str, status: str, intent_id: str = "", code: str = "",
                           message: str = "", event_at: datetime | None = None) -> Payment:
    """Applies what Stripe said about an attempt (its synchronous answer or a webhook), whatever the order.

    ``succeeded`` is final for the attempt and ``paid`` final for the invoice: a failure reported late
    never reopens them. Among events, an older one (by Stripe's ``created``) than the last applied is ignored.
    """
    invoice_id = Payment.objects.filter(pk=payment_id).values_list("invoice_id", flat=True).get()
    invoice = Invoice.objects.select_for_update(of=("self",)).select_related("account__organization").get(pk=invoice_id)
    payment = lock_row(Payment, payment_id)
    if intent_id and not payment.stripe_payment_intent_id:
        payment.stripe_payment_intent_id = intent_id
    stale = event_at is not None and payment.stripe_event_at is not None and event_at < payment.stripe_event_at
    # An attempt's intent is never confirmed again: once failed, only a success (money did arrive) moves it.
    settled = payment.status == PaymentStatus.SUCCEEDED or (
        payment.status == PaymentStatus.FAILED and status != PaymentStatus.SUCCEEDED)
    if settled or stale:
        payment.save(update_fields=["stripe_payment_intent_id", "updated_at"])
        return payment
    payment.status = status
    if status == PaymentStatus.FAILED:
        payment.error_code, payment.error_message = code[:100], message[:300]
    if event_at is not None:
        payment.stripe_event_at = event_at
    payment.save()
    latest = invoice.payments.order_by("-attempt").values_list("pk", flat=True).first() == payment.pk
    if status == PaymentStatus.SUCCEEDED:
        _invoice_mark_paid(invoice=invoice, payment=payment)
    elif status == PaymentStatus.FAILED and latest and invoice.status == InvoiceStatus.OPEN:
        now = timezone.now()
        first = invoice.payment_failed_at or now
        failures = invoice.payments.filter(status=PaymentStatus.FAILED).count()
        invoice.payment_failed_at = first
        invoice.next_payment_attempt_at = _next_retry(first, failures)
        invoice.last_payment_error = (message or code)[:300]
        invoice.save(update_fields=["payment_failed_at", "next_payment_attempt_at", "last_payment_error"])
        account = accounts.account_locked(invoice.account_id)
        if account.payment_failed_at is None:
            account.payment_failed_at = now
            account.save(update_fields=["payment_failed_at", "updated_at"])
        audit_record(principal=Principal.for_system(account.organization), action="invoice.payment_failed",
                     target=invoice, changes={"attempt": payment.attempt, "code": code, "message": message[:300]})
    return payment


def _invoice_mark_paid(*, invoice: Invoice, payment: Payment | None) -> None:
    if invoice.status == InvoiceStatus.PAID:
        return
    invoice.status = InvoiceStatus.PAID
    invoice.paid_at = timezone.now()
    invoice.payment_failed_at = invoice.next_payment_attempt_at = None
    invoice.last_payment_error = ""
    invoice.save(update_fields=["status", "paid_at", "payment_failed_at", "next_payment_attempt_at",
                                "last_payment_error"])
    audit_record(principal=Principal.for_system(invoice.account.organization), action="invoice.paid",
                 target=invoice, changes={"status": [InvoiceStatus.OPEN, InvoiceStatus.PAID],
                                          "payment": payment.pk if payment else None,
                                          "total": str(invoice.total), "currency": invoice.currency})
    dunning.dunning_clear_if_settled(account_id=invoice.account_id)


def invoices_collect_due(*, now: datetime | None = None) -> list[str]:
    """Invoices worth a collection attempt now: never tried, due for a dunning retry, or an attempt left
    pending by an outage or a crashed worker for a while."""
    if not stripe_gateway.is_configured():
        return []
    now = now or timezone.now()
    stuck = now - timedelta(seconds=settings.BILLING_COLLECT_REDRIVE_AFTER_S)
    open_ = Invoice.objects.filter(status=InvoiceStatus.OPEN, total__gt=0)
    ids = set(open_.filter(payments__isnull=True).values_list("pk", flat=True))
    ids |= set(open_.filter(next_payment_attempt_at__lte=now).values_list("pk", flat=True))
    ids |= set(open_.filter(payments__status=PaymentStatus.PENDING, payments__updated_at__lte=stuck)
               .values_list("pk", flat=True))
    return sorted(ids)
