"""Stripe webhooks: events verified, stored once and handled."""

from __future__ import annotations

import json

import stripe
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing import stripe_gateway
from billing.models import (
    BillingAccount,
    Invoice,
    Payment,
    PaymentStatus,
    StripeEvent,
)
from billing.services import cards, dunning, payments
from controlplane import errors
from controlplane.db import lock_row


# --- webhooks ------------------------------------------------------------------------------------
def stripe_event_receive(*, payload: bytes, signature: str | None) -> tuple[StripeEvent, bool]:
    """Verifies a webhook on its raw body, stores it once by its Stripe id and handles it exactly once.

    Returns the stored event and whether this delivery handled it. Two deliveries at once: the second
    insert waits on the unique index until the first commits, then finds the event already handled.
    """
    if not settings.STRIPE_WEBHOOK_SECRET:
        raise stripe_gateway.StripeOffline("Stripe webhooks are not configured in this installation.")
    try:
        stripe.Webhook.construct_event(payload, signature, settings.STRIPE_WEBHOOK_SECRET,
                                       tolerance=settings.STRIPE_WEBHOOK_TOLERANCE_S)
        data = json.loads(payload)
    except stripe.SignatureVerificationError as exc:
        raise errors.ValidationFailed("The Stripe-Signature header is missing, invalid or too old.") from exc
    except ValueError as exc:
        raise errors.ValidationFailed("The event is not valid JSON.") from exc
    if not isinstance(data, dict) or not data.get("id") or not data.get("type"):
        raise errors.ValidationFailed("The event has no id or type.")
    failed_account = None
    with transaction.atomic():
        row, created = StripeEvent.objects.get_or_create(
            stripe_id=str(data["id"])[:255],
            defaults={"type": str(data["type"])[:100], "payload": data, "livemode": bool(data.get("livemode")),
                      "created": stripe_gateway.from_timestamp(data.get("created")) or timezone.now()})
        row = lock_row(StripeEvent, row.pk)
        if not created:
            row.deliveries += 1
            row.save(update_fields=["deliveries"])
        if row.processed_at is not None:
            return row, False
        row.outcome, failed_account = _stripe_event_handle(data)
        row.processed_at = timezone.now()
        row.save(update_fields=["outcome", "processed_at"])
    if failed_account is not None:
        dunning.dunning_warn(account_id=failed_account)
    return row, True


def _payment_for_intent(intent: dict) -> Payment | None:
    payment = Payment.objects.filter(stripe_payment_intent_id=intent.get("id") or "-").first()
    if payment is None:
        # A webhook can beat the synchronous answer that tells us the intent id: the metadata names the attempt.
        payment_id = (intent.get("metadata") or {}).get("payment")
        payment = Payment.objects.filter(pk=payment_id).first() if payment_id else None
    return payment


def _stripe_event_handle(event: dict) -> tuple[str, str | None]:
    """Handles one verified event; returns (outcome for the log, account id to warn after a failure)."""
    kind, obj = event["type"], (event.get("data") or {}).get("object") or {}
    event_at = stripe_gateway.from_timestamp(event.get("created"))
    if kind.startswith("payment_intent."):
        status = {"payment_intent.succeeded": PaymentStatus.SUCCEEDED,
                  "payment_intent.payment_failed": PaymentStatus.FAILED,
                  "payment_intent.processing": PaymentStatus.PROCESSING,
                  "payment_intent.requires_action": PaymentStatus.FAILED}.get(kind)
        payment = _payment_for_intent(obj) if status else None
        if payment is None:
            return "ignored: not one of our payment attempts" if status else f"ignored: {kind}", None
        error = obj.get("last_payment_error") or {}
        if kind == "payment_intent.requires_action":
            error = {"code": "authentication_required",
                     "message": "The bank asks the cardholder to authenticate this payment."}
        payment = payments.payment_record_outcome(payment_id=payment.pk, status=status, intent_id=obj.get("id") or "",
                                         code=error.get("code") or "", message=error.get("message") or "",
                                         event_at=event_at)
        failed = payment.status == PaymentStatus.FAILED and status == PaymentStatus.FAILED
        account_id = Invoice.objects.filter(pk=payment.invoice_id).values_list("account_id", flat=True).get()
        return f"payment {payment.pk}: {payment.status}", account_id if failed else None
    if kind == "setup_intent.succeeded":
        account = BillingAccount.objects.select_related("organization").filter(
            stripe_customer_id=obj.get("customer") or "-").first()
        if account is None:
            return "ignored: unknown customer", None
        try:
            account = cards.payment_method_setup_complete(account=account, setup_intent=obj)
        except stripe_gateway.StripeUnavailable:
            raise  # 503: Stripe delivers the event again later
        except errors.DomainError as exc:
            # Acknowledged: delivering it again would be refused the same way.
            return f"refused: {exc.detail}"[:300], None
        return f"card {account.card_brand} {account.card_last4} on {account.pk}", None
    return f"ignored: {kind}", None
