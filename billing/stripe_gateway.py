"""The one way to reach Stripe: a ``stripe.StripeClient`` built from settings, or offline mode without a key.

Offline mode (no ``STRIPE_SECRET_KEY``, the ``make run`` default): invoices are kept here and nothing
leaves the machine. Every create/confirm call carries an idempotency key derived from our own ids, so a
retry after a timeout or an outage never charges twice: Stripe answers a repeated key with the first result.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import NoReturn

import stripe
from django.conf import settings

from billing import money
from controlplane import errors

OFFLINE_DETAIL = "Card payments are not configured in this installation; invoices are kept here."


class StripeOffline(errors.Conflict):
    """Raised where a card operation is asked for while Stripe is not configured."""

    title = "Card payments are offline"
    type_slug = "payments-offline"


class StripeUnavailable(errors.DomainError):
    """Stripe could not be reached or answered 5xx/429: the same request (same idempotency key) may be
    retried later. Tasks retry with backoff; the API answers 503."""

    status_code = 503
    title = "Payment provider unavailable"
    type_slug = "payment-provider-unavailable"


def unavailable(exc: stripe.StripeError) -> StripeUnavailable:
    return StripeUnavailable(f"Stripe could not be reached ({type(exc).__name__}); try again shortly.")


def reraise(exc: stripe.StripeError) -> NoReturn:
    """A transient failure becomes ``StripeUnavailable`` (retry later); anything else is a bug or a broken
    configuration (e.g. a revoked key) and is raised as it is, for the logs and the ops site."""
    if is_transient(exc):
        raise unavailable(exc) from exc
    raise exc


def is_configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def client() -> stripe.StripeClient:
    if not is_configured():
        raise StripeOffline(OFFLINE_DETAIL)
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses={"api": settings.STRIPE_API_BASE},
        max_network_retries=settings.STRIPE_MAX_NETWORK_RETRIES,
        http_client=stripe.RequestsClient(timeout=settings.STRIPE_TIMEOUT_S),
    )


def publishable_key() -> str:
    return settings.STRIPE_PUBLISHABLE_KEY


def is_transient(exc: stripe.StripeError) -> bool:
    """Worth retrying with the same idempotency key: the network, a rate limit, Stripe's own 5xx, or the same
    key still in flight on Stripe's side (409 idempotency error)."""
    if isinstance(exc, (stripe.APIConnectionError, stripe.RateLimitError, stripe.IdempotencyError)):
        return True
    status = getattr(exc, "http_status", None)
    return isinstance(exc, stripe.APIError) or (status is not None and status >= 500)


def minor_units(amount: Decimal, currency: str) -> int:
    """Stripe amounts are integers in the currency's minor unit (USD and CNY: cents, 2 decimals in Stripe)."""
    exponent = money.minor_unit(currency)
    return int(money.quantize(amount, currency).scaleb(exponent))


def from_timestamp(value: int | float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(int(value), UTC)


# --- idempotency keys: one per thing we mean to happen once ------------------------------------------
def customer_key(account_id: str) -> str:
    return f"customer-{account_id}"


def payment_key(invoice_id: str, attempt: int) -> str:
    return f"pay-{invoice_id}-{attempt}"
