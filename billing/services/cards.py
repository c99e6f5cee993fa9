"""Stripe customer and card: the customer created on first use, SetupIntents for the payment method."""

from __future__ import annotations

import secrets

import stripe
from django.db import transaction
from django.utils import timezone

from billing import selectors, stripe_gateway
from billing.models import (
    BillingAccount,
)
from billing.services import accounts
from controlplane import errors
from controlplane.queue import enqueue_on_commit
from projects.audit import audit_record
from projects.roles import Perm
from projects.tenancy import Principal


# --- Stripe: customer and card -------------------------------------------------------------------
def stripe_customer_ensure(*, account: BillingAccount) -> str:
    """The account's Stripe customer id, created on first use. Idempotent: the idempotency key is derived
    from the account id, so two racing callers (or a retry after a timeout) get the same customer."""
    if account.stripe_customer_id:
        return account.stripe_customer_id
    org = account.organization
    try:
        customer = stripe_gateway.client().v1.customers.create(
            params={"name": account.legal_name or org.name,
                    "metadata": {"billing_account": account.pk, "organization": org.pk}},
            options={"idempotency_key": stripe_gateway.customer_key(account.pk)})
    except stripe.StripeError as exc:
        stripe_gateway.reraise(exc)
    with transaction.atomic():
        locked = accounts.account_locked(account.pk)
        if not locked.stripe_customer_id:
            locked.stripe_customer_id = customer.id
            locked.save(update_fields=["stripe_customer_id", "updated_at"])
            audit_record(principal=Principal.for_system(org), action="billing_account.stripe_customer_create",
                         target=locked, changes={"stripe_customer_id": customer.id})
    account.stripe_customer_id = locked.stripe_customer_id
    return account.stripe_customer_id


def payment_method_setup_start(*, principal: Principal) -> dict[str, str]:
    """A SetupIntent for the organization's customer, to be confirmed in the browser by Stripe.js.

    409 (``StripeOffline``) when card payments are not configured; 503 when Stripe cannot be reached.
    """
    principal.require(Perm.BILLING_MANAGE)
    if not stripe_gateway.is_configured():
        raise stripe_gateway.StripeOffline(stripe_gateway.OFFLINE_DETAIL)
    account, _ = BillingAccount.objects.select_related("organization").get_or_create(
        organization=principal.organization)
    customer_id = stripe_customer_ensure(account=account)
    try:
        intent = stripe_gateway.client().v1.setup_intents.create(
            params={"customer": customer_id, "usage": "off_session", "payment_method_types": ["card"],
                    "metadata": {"billing_account": account.pk}},
            # One SetupIntent per request; the key only makes the client's own network retries safe.
            options={"idempotency_key": f"setup-{account.pk}-{secrets.token_hex(8)}"})
    except stripe.StripeError as exc:
        stripe_gateway.reraise(exc)
    audit_record(principal=principal, action="billing.payment_method_setup", target=account,
                 changes={"setup_intent": intent.id})
    return {"client_secret": intent.client_secret, "publishable_key": stripe_gateway.publishable_key(),
            "setup_intent": intent.id}


def payment_method_setup_complete(*, account: BillingAccount, setup_intent: dict | None = None,
                                  setup_intent_id: str = "", principal: Principal | None = None) -> BillingAccount:
    """Makes the card of a succeeded SetupIntent the customer's default and shows it on the account.

    Called by the ``setup_intent.succeeded`` webhook (with the event's object) and by the console after
    Stripe.js confirmed (with an id: the intent is read back from Stripe, never trusted from the browser).
    A SetupIntent older than the one that set the current card changes nothing (events arrive out of order).
    """
    client = stripe_gateway.client()
    try:
        if setup_intent is None:
            setup_intent = client.v1.setup_intents.retrieve(setup_intent_id).to_dict()
        if not account.stripe_customer_id or setup_intent.get("customer") != account.stripe_customer_id:
            raise errors.NotFound(f"No setup intent {setup_intent.get('id') or setup_intent_id}.")
        if setup_intent.get("status") != "succeeded" or not setup_intent.get("payment_method"):
            raise errors.Conflict("The card setup has not succeeded yet.")
        pm_id = setup_intent["payment_method"]
        pm = client.v1.payment_methods.retrieve(pm_id).to_dict()
        if pm.get("customer") != account.stripe_customer_id:
            pm = client.v1.payment_methods.attach(
                pm_id, params={"customer": account.stripe_customer_id},
                options={"idempotency_key": f"attach-{account.pk}-{pm_id}"}).to_dict()
        client.v1.customers.update(
            account.stripe_customer_id, params={"invoice_settings": {"default_payment_method": pm_id}},
            options={"idempotency_key": f"default-pm-{account.pk}-{pm_id}"})
    except stripe.StripeError as exc:
        if stripe_gateway.is_transient(exc):
            raise stripe_gateway.unavailable(exc) from exc
        raise errors.Conflict(f"Stripe refused the card: {exc.user_message or exc}") from exc
    set_at = stripe_gateway.from_timestamp(setup_intent.get("created")) or timezone.now()
    card = pm.get("card") or {}
    with transaction.atomic():
        locked = accounts.account_locked(account.pk)
        if locked.card_set_at and set_at < locked.card_set_at:
            return locked
        before = locked.stripe_payment_method_id
        locked.stripe_payment_method_id = pm_id
        locked.card_brand = str(card.get("brand") or "")[:20]
        locked.card_last4 = str(card.get("last4") or "")[:4]
        locked.card_exp_month = card.get("exp_month")
        locked.card_exp_year = card.get("exp_year")
        locked.card_set_at = set_at
        locked.save()
        if before != pm_id:
            audit_record(principal=principal or Principal.for_system(locked.organization),
                         action="billing_account.card_set", target=locked,
                         changes={"card": f"{locked.card_brand} •••• {locked.card_last4}",
                                  "exp": f"{locked.card_exp_month}/{locked.card_exp_year}"})
    # A new card pays the debt now rather than on the next scheduled retry (outside the account lock:
    # collection locks the invoice before the account).
    unpaid = selectors.invoices_failed_unpaid(account=locked)
    unpaid.update(next_payment_attempt_at=timezone.now())
    for invoice_id in unpaid.values_list("pk", flat=True):
        enqueue_on_commit("billing.tasks.invoice_collect", invoice_id)
    return locked
