"""Annual subscriptions: the switch to annual, prorated scales inside a term, renewals and returns to hourly."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from billing import money, periods
from billing.models import (
    AnnualCharge,
    ChargeKind,
    Subscription,
    SubscriptionMode,
)
from controlplane import errors
from controlplane.db import lock_row
from deployments.facade import HOURS_PER_YEAR, operation_start, operation_succeed, spec_prices
from deployments.models import Deployment, DeploymentEvent, SpecPrice
from deployments.models import DeploymentStatus as S
from projects.audit import audit_event, audit_record, audit_record_many
from projects.tenancy import Principal


# --- subscriptions ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class AnnualQuote:
    """What switching a deployment to annual billing costs, as :func:`subscription_switch_to_annual` charges it:
    the price of its spec for a term from now, against a year of its hourly price."""

    price: Decimal
    currency: str
    term_start: datetime
    term_end: datetime
    hourly_price: Decimal
    saving_pct: Decimal  # against a year of hours, as the catalog states it

    @property
    def invoiced_on(self) -> date:
        """The term is charged on the next invoice, issued on the 1st of next month."""
        return periods.month_after(self.term_start.date())

    @property
    def hourly_year(self) -> Decimal:
        return self.hourly_price * HOURS_PER_YEAR

    @property
    def saving(self) -> Decimal:
        return money.quantize(self.hourly_year - self.price, self.currency)


def subscription_annual_quote(*, deployment: Deployment, currency: str, now: datetime | None = None) -> AnnualQuote:
    """The annual price and term the switch would charge now (errors.NotFound without a price in ``currency``)."""
    prices = spec_prices(spec=deployment.spec, currency=currency)
    if prices is None:
        raise errors.NotFound(f"The spec {deployment.spec_id} has no price in {currency}.")
    now = now or timezone.now()
    return AnnualQuote(price=prices["annual"], currency=currency, term_start=now, term_end=periods.one_year_later(now),
                       hourly_price=prices["hourly"], saving_pct=prices["annual_saving_pct"])


@transaction.atomic
def subscription_switch_to_annual(*, principal: Principal, deployment: Deployment, renew: bool) -> Subscription:
    """Hourly metering stops at this second, a 12-month term starts, its price is charged on the next invoice."""
    deployment = lock_row(Deployment, deployment.pk, organization=principal.organization)
    if deployment.status in (S.DELETING, S.DELETED):
        raise errors.Conflict("A deployment being deleted cannot switch to annual billing.")
    Subscription.objects.get_or_create(deployment=deployment, defaults={"organization_id": deployment.organization_id})
    subscription = Subscription.objects.select_for_update().get(deployment=deployment)
    if subscription.mode == SubscriptionMode.ANNUAL:
        raise errors.Conflict("This deployment is already on annual billing.")
    currency = principal.organization.currency
    quote = subscription_annual_quote(deployment=deployment, currency=currency)
    price, now = quote.price, quote.term_start
    subscription.mode = SubscriptionMode.ANNUAL
    subscription.term_start = now
    subscription.term_end = quote.term_end
    subscription.annual_price = price
    subscription.currency = currency
    subscription.renews = renew
    subscription.full_clean()
    subscription.save()
    AnnualCharge.objects.create(organization_id=deployment.organization_id, subscription=subscription,
                                deployment=deployment, spec_id=deployment.spec_id,
                                amount=money.quantize(price, currency), currency=currency,
                                term_start=subscription.term_start, term_end=subscription.term_end)
    # Done in this request (no worker): the operation is recorded finished, so the switch has a Location too.
    operation = operation_start(organization_id=deployment.organization_id, type="switch_to_annual",
                                deployment=deployment, steps=["switch"], requested_by=principal.actor_label,
                                params={"renew": renew}, exclusive=False)
    operation_succeed(operation)
    audit_record(principal=principal, action="subscription.switch_to_annual", target=deployment,
                 changes={"mode": ["hourly", "annual"], "annual_price": str(price), "currency": currency,
                          "renews": renew, "term_start": now.isoformat()})
    return subscription


def _spec_changes(rows: list[tuple[str, str, datetime, str]]) -> list[tuple[str, str, datetime, str]]:
    """The rows whose spec differs from the one before of the same deployment; ``rows`` are
    ``(event id, deployment, at, spec)`` ordered by deployment, time."""
    changes = []
    previous: tuple[str, str, datetime, str] | None = None
    for row in rows:
        if previous is not None and previous[1] == row[1] and previous[3] != row[3]:
            changes.append(row)
        previous = row
    return changes


PRORATION_LOOKBACK = timedelta(days=62)
PRORATION_BATCH = 500  # scales charged per transaction by default


def subscriptions_prorate_scales(*, now: datetime | None = None, batch_size: int = PRORATION_BATCH) -> int:
    """Charges (or credits) the prorated difference of every scale inside an annual term; returns how many.

    A scale is the DeploymentEvent whose spec differs from the deployment's previous event: the
    ``scaling → running`` event written when the rollout has settled (deployments.provisioning), the same
    second hourly metering switches price. A scale that fails writes none (``scaling → failed`` keeps the old
    spec). Reading committed events here (the hourly billing task calls this), rather than charging inside
    ``deployment_scale``, means a scale that is refused, rolled back or fails in the cluster charges nothing,
    and one that completes is charged even if the worker died right after. One proration per source event
    (unique), so reruns and a re-delivered task never charge twice.

    Amount: (annual price of the new spec − annual price of the spec paid for so far in the term) × seconds
    left in the term / seconds in the term, at the current price book, rounded half-up; negative (a credit)
    for a downgrade. "Paid for so far" is the spec of the term's latest charge before the event, so a renewal
    that already charged the new spec (a scale landing between a term's end and the rollover) costs nothing
    more. The subscription's ``annual_price`` becomes the new spec's, which a renewal charges.

    The scales are charged ``batch_size`` per transaction, each batch a few statements: a run that dies midway
    kept the batches before, and a rerun charges the rest.
    """
    now = now or timezone.now()
    terms: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    # Terms that ended two months ago were scanned by every hourly run since their last scale (and invoiced).
    for dep_id, term_start, term_end in AnnualCharge.objects.filter(
            kind=ChargeKind.TERM, term_start__lte=now, term_end__gt=now - PRORATION_LOOKBACK).values_list(
            "deployment_id", "term_start", "term_end"):
        terms[dep_id].append((term_start, term_end))
    if not terms:
        return 0
    rows = list(DeploymentEvent.objects.filter(deployment_id__in=list(terms), created_at__lte=now)
                .order_by("deployment_id", "created_at", "id").values_list("id", "deployment_id", "created_at",
                                                                          "spec_id"))
    charged = set(AnnualCharge.objects.filter(kind=ChargeKind.PRORATION, deployment_id__in=list(terms))
                  .values_list("source_event_id", flat=True))
    scales = []
    for event_id, dep_id, at, new_spec in _spec_changes(rows):
        term = next(((a, b) for a, b in terms[dep_id] if a <= at < b), None)
        if term is not None and event_id not in charged:
            scales.append(_Scale(event_id=event_id, deployment_id=dep_id, at=at, new_spec=new_spec, term=term))
    return sum(_prorate_scales(scales=scales[n:n + batch_size], now=now) for n in range(0, len(scales), batch_size))


@dataclass(frozen=True)
class _Scale:
    """A committed spec change inside an annual term, not charged yet when the run read it."""

    event_id: str
    deployment_id: str
    at: datetime
    new_spec: str
    term: tuple[datetime, datetime]


def _paid_order(indexed: tuple[int, AnnualCharge]) -> tuple[bool, datetime, datetime, int]:
    """Newest first, as "paid for so far" reads the charges: by when they took effect (a term's own charge, with
    none, is the oldest), then by creation, then in the order they were made."""
    position, charge = indexed
    return (charge.effective_at is not None, charge.effective_at or charge.term_start, charge.created_at, position)


@transaction.atomic
def _prorate_scales(*, scales: list[_Scale], now: datetime) -> int:
    """Charges ``scales`` (in deployment, time order) in one transaction: a statement per kind of row, whatever
    their number. Returns how many charges were made."""
    deployment_ids = {scale.deployment_id for scale in scales}
    term_charges = {(c.deployment_id, c.term_start): c for c in AnnualCharge.objects.filter(
        kind=ChargeKind.TERM, deployment_id__in=deployment_ids).select_related("deployment__organization")}
    subscription_ids = sorted({term_charges[s.deployment_id, s.term[0]].subscription_id for s in scales})
    # The subscription locks serialize concurrent runs (taken in id order: two runs never wait crosswise); the
    # unique source event is the last line of defence.
    subscriptions = {s.pk: s for s in Subscription.objects.select_for_update().filter(id__in=subscription_ids)
                     .order_by("id")}
    charged = set(AnnualCharge.objects.filter(source_event_id__in=[s.event_id for s in scales])
                  .values_list("source_event_id", flat=True))
    # What each term has been charged so far; the charges made below join it, so a second scale of the same term
    # in this batch starts from the spec the first one paid for.
    paid_so_far: dict[tuple[int, datetime], list[AnnualCharge]] = defaultdict(list)
    for charge in AnnualCharge.objects.filter(subscription_id__in=subscription_ids,
                                              kind__in=[ChargeKind.TERM, ChargeKind.PRORATION]).order_by("id"):
        paid_so_far[charge.subscription_id, charge.term_start].append(charge)
    prices = {(p.spec_id, p.currency): p.annual for p in SpecPrice.objects.filter(
        currency__in={c.currency for c in term_charges.values()})}
    made: list[AnnualCharge] = []
    repriced: dict[int, Subscription] = {}
    events = []
    for scale in scales:
        if scale.event_id in charged:
            continue
        term, at = scale.term, scale.at
        term_charge = term_charges[scale.deployment_id, term[0]]
        subscription = subscriptions[term_charge.subscription_id]
        history = paid_so_far[subscription.pk, term[0]]
        paid = max(((n, c) for n, c in enumerate(history) if c.effective_at is None or c.effective_at <= at),
                   key=_paid_order, default=None)
        paid_spec = paid[1].spec_id if paid is not None else term_charge.spec_id
        if paid_spec == scale.new_spec:
            continue
        currency = term_charge.currency
        old_price, new_price = prices[paid_spec, currency], prices[scale.new_spec, currency]
        term_seconds = int((term[1] - term[0]).total_seconds())
        remaining = int((term[1] - at).total_seconds())
        amount = money.quantize((new_price - old_price) * remaining / term_seconds, currency)
        charge = AnnualCharge(
            organization_id=term_charge.organization_id, subscription=subscription,
            deployment_id=term_charge.deployment_id, kind=ChargeKind.PRORATION, spec_id=scale.new_spec,
            previous_spec_id=paid_spec, amount=amount, currency=currency, term_start=term[0], term_end=term[1],
            effective_at=at, source_event_id=scale.event_id, created_at=now)
        made.append(charge)
        history.append(charge)
        if subscription.mode == SubscriptionMode.ANNUAL and subscription.term_start == term[0]:
            subscription.annual_price = new_price
            repriced[subscription.pk] = subscription
        deployment = term_charge.deployment
        events.append(audit_event(principal=Principal.for_system(deployment.organization),
                                  action="subscription.prorate", target=deployment,
                                  changes={"spec": [paid_spec, scale.new_spec], "amount": str(amount),
                                           "currency": currency, "effective_at": at.isoformat(),
                                           "event": scale.event_id}))
    AnnualCharge.objects.bulk_create(made)
    # A statement per new price (a handful: the catalog's), rather than a CASE branch per subscription.
    by_price: dict[Decimal, list[int]] = defaultdict(list)
    for subscription in repriced.values():
        by_price[subscription.annual_price].append(subscription.pk)  # type: ignore[index]
    for price, ids in by_price.items():
        Subscription.objects.filter(pk__in=ids).update(annual_price=price, updated_at=timezone.now())
    if events:
        audit_record_many(events)
    return len(made)


def subscriptions_roll_over(*, now: datetime | None = None) -> int:
    """Ends annual terms that are over: renews them (a new term, charged on the next invoice) or returns the
    deployment to hourly billing from the second the term ended. Idempotent; returns how many changed."""
    now = now or timezone.now()
    changed = 0
    for subscription_id in Subscription.objects.filter(mode=SubscriptionMode.ANNUAL, term_end__lte=now).values_list(
            "id", flat=True):
        with transaction.atomic():
            subscription = (Subscription.objects.select_for_update().select_related("deployment__organization")
                            .filter(id=subscription_id, mode=SubscriptionMode.ANNUAL, term_end__lte=now).first())
            if subscription is None:
                continue
            deployment = subscription.deployment
            principal = Principal.for_system(deployment.organization)
            live = deployment.status not in (S.DELETING, S.DELETED)
            while subscription.renews and live and subscription.term_end <= now:
                price = SpecPrice.objects.get(spec_id=deployment.spec_id, currency=subscription.currency).annual
                subscription.term_start, subscription.term_end = (subscription.term_end,
                                                                  periods.one_year_later(subscription.term_end))
                subscription.annual_price = price
                AnnualCharge.objects.get_or_create(
                    subscription=subscription, term_start=subscription.term_start, kind=ChargeKind.TERM,
                    defaults={"organization_id": deployment.organization_id, "deployment": deployment,
                              "spec_id": deployment.spec_id, "amount": money.quantize(price, subscription.currency),
                              "currency": subscription.currency, "term_end": subscription.term_end})
                audit_record(principal=principal, action="subscription.renew", target=deployment,
                             changes={"term_start": subscription.term_start.isoformat(),
                                      "annual_price": str(price)})
            if subscription.term_end <= now:
                audit_record(principal=principal, action="subscription.return_to_hourly", target=deployment,
                             changes={"mode": ["annual", "hourly"], "term_end": subscription.term_end.isoformat()})
                subscription.mode = SubscriptionMode.HOURLY
                subscription.term_start = subscription.term_end = subscription.annual_price = None
                subscription.renews = False
            subscription.save()
            changed += 1
    return changed
