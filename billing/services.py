"""Every write to billing data: keyword-only, atomic, audited. Reruns of metering and invoicing are no-ops."""

from __future__ import annotations

import json
import secrets
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import stripe
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, OuterRef, Q, Subquery, Sum
from django.urls import reverse
from django.utils import timezone
from stdnum.eu import vat as eu_vat
from stdnum.gb import vat as gb_vat
from stdnum.util import clean

from alerts import notices
from alerts import selectors as alert_selectors
from billing import emails, money, selectors, stripe_gateway, vies
from billing.metering import RATE_OF_STATUS, STOPPED, Transition, metered_seconds
from billing.models import (
    AnnualCharge,
    BillingAccount,
    Budget,
    BudgetCrossing,
    ChargeKind,
    Invoice,
    InvoiceCounter,
    InvoiceLine,
    InvoiceStatus,
    Payment,
    PaymentStatus,
    StripeEvent,
    Subscription,
    SubscriptionMode,
    UsageRecord,
    VatStatus,
)
from controlplane import countries, errors, locks
from deployments.models import Deployment, DeploymentEvent, Spec, SpecPrice
from deployments.models import DeploymentStatus as S
from projects.models import SITE_CURRENCY, Organization, Project
from projects.roles import Perm
from projects.services import audit_record
from projects.tenancy import Principal

HOUR = timedelta(hours=1)


# --- billing account --------------------------------------------------------------------------------
def vat_number_normalize(*, country: str, vat_number: str) -> str:
    """The compact VAT number with its prefix (``EL`` for Greece, ``GB``/``XI`` for the UK), checked for format
    and check digit. Raises ValidationFailed on a bad number or one that does not belong to ``country``."""

    def fail(message: str) -> errors.ValidationFailed:
        return errors.ValidationFailed(message, errors={"vat_number": [message]})

    if not country:
        raise fail("Set the country before the VAT number.")
    if country not in money.eu_member_states() and country != "GB":
        raise fail("VAT numbers are recorded for customers in the EU and the United Kingdom only.")
    compact = clean(vat_number, " -./,:").upper().strip()
    prefixes = money.vat_prefixes(country)
    if compact[:1].isdigit():
        compact = prefixes[0] + compact
    if compact[:2] not in prefixes:
        raise fail(f"A VAT number of {country} starts with {' or '.join(prefixes)}.")
    valid = gb_vat.is_valid(compact[2:]) if compact[:2] == "GB" else eu_vat.is_valid(compact)
    if not valid:
        raise fail("This is not a valid VAT number (format or check digit).")
    return compact


@transaction.atomic
def billing_account_update(*, principal: Principal, legal_name: str | None = None, address: str | None = None,
                           country: str | None = None, vat_number: str | None = None) -> BillingAccount:
    account, _ = BillingAccount.objects.get_or_create(organization=principal.organization)
    account = BillingAccount.objects.select_for_update().get(pk=account.pk)
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
    from billing.tasks import vat_number_check

    # On commit: a rolled-back change queues nothing, and the worker sees the committed number.
    transaction.on_commit(lambda: vat_number_check.delay(account_id, force))


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


# --- metering ---------------------------------------------------------------------------------------
def _hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _price_table() -> dict[tuple[str, str], SpecPrice]:
    return {(p.spec_id, p.currency): p for p in SpecPrice.objects.all()}


#: Hours metered per query and transaction by :func:`usage_meter_range`: bounds memory and lock time.
METER_CHUNK_HOURS = 24


def usage_meter_hour(*, hour_start: datetime) -> int:
    """Meters one closed hour from DeploymentEvents and upserts its UsageRecords; returns how many rows changed.

    Idempotent: an unchanged history writes nothing. Re-running an hour after late events recomputes it
    (changed rows updated, vanished ones deleted). Running (and scaling) seconds are priced at the spec's
    hourly price, stopped seconds at its stopped (storage) price, in separate rows. Metering at both rates
    stops at the second of a switch to annual: the term is prepaid.
    """
    if hour_start.tzinfo is None or hour_start != _hour_floor(hour_start):
        raise ValueError("hour_start must be an aware datetime on the hour")
    return usage_meter_range(start=hour_start, end=hour_start + HOUR)


def usage_meter_range(*, start: datetime, end: datetime) -> int:
    """Meters every closed hour in ``[start, end)`` as :func:`usage_meter_hour` does, a day of hours per query
    (a month for 10,000 deployments is 30 rounds of a few queries, not 720); returns how many rows changed."""
    for moment in (start, end):
        if moment.tzinfo is None or moment != _hour_floor(moment):
            raise ValueError("start and end must be aware datetimes on the hour")
    changed = 0
    while start < end:
        chunk_end = min(start + HOUR * METER_CHUNK_HOURS, end)
        changed += _meter_chunk(start, chunk_end)
        start = chunk_end
    return changed


def _meter_chunk(start: datetime, end: datetime) -> int:
    hours = [start + HOUR * n for n in range(int((end - start) / HOUR))]
    deployments = list(
        Deployment.objects.filter(created_at__lt=end).exclude(deleted_at__lt=start)
        .annotate(state_event=Subquery(
            DeploymentEvent.objects.filter(deployment=OuterRef("pk"), created_at__lte=start)
            .order_by("-created_at", "-id").values("id")[:1]))
        .values_list("id", "organization_id", "organization__site", "state_event"))
    wanted_ids = {d[0] for d in deployments}
    events: dict[str, list[Transition]] = defaultdict(list)
    rows = (DeploymentEvent.objects.filter(id__in=[d[3] for d in deployments if d[3]])
            | DeploymentEvent.objects.filter(created_at__gt=start, created_at__lt=end))
    for dep_id, at, to_status, spec_id in rows.values_list("deployment_id", "created_at", "to_status", "spec_id"):
        if dep_id in wanted_ids:
            events[dep_id].append(Transition(at, to_status, spec_id))
    annual_terms: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for dep_id, term_start, term_end in AnnualCharge.objects.filter(
            kind=ChargeKind.TERM, term_start__lt=end, term_end__gt=start).values_list(
            "deployment_id", "term_start", "term_end"):
        annual_terms[dep_id].append((term_start, term_end))
    prices = _price_table()
    # (deployment, hour, spec, rate) -> (organization, seconds, currency, per-hour price of the rate)
    wanted: dict[tuple[str, datetime, str, str], tuple[str, int, str, Decimal]] = {}
    for dep_id, org_id, site, _ in deployments:
        currency = SITE_CURRENCY[site]
        history = sorted(events[dep_id], key=lambda e: e.at)
        terms = annual_terms[dep_id]
        state: Transition | None = None
        steady: tuple[str, str, Decimal] | None = None  # (spec, rate, price) of a whole hour in `state`
        steady_of: Transition | None = None
        index = 0
        for hour in hours:
            # The state in force at the hour's start, then the events inside the hour.
            while index < len(history) and history[index].at <= hour:
                state = history[index]
                index += 1
            inside = index
            while inside < len(history) and history[inside].at < hour + HOUR:
                inside += 1
            if state is None and inside == index:
                continue
            if inside == index and not any(a < hour + HOUR and b > hour for a, b in terms):
                # Nothing happens inside the hour and no annual term touches it: the whole hour in one state,
                # which is what metered_seconds returns for it (most hours of a month).
                if steady_of is not state:
                    steady, steady_of = _steady_row(state, currency, prices), state
                if steady is not None:
                    wanted[(dep_id, hour, steady[0], steady[1])] = (org_id, 3600, currency, steady[2])
                continue
            window = ([state] if state is not None else []) + history[index:inside]
            for (spec_id, rate), secs in metered_seconds(window, start=hour, end=hour + HOUR,
                                                         annual_terms=terms).items():
                price = prices[(spec_id, currency)]
                wanted[(dep_id, hour, spec_id, rate)] = (
                    org_id, secs, currency, price.stopped_hourly if rate == STOPPED else price.hourly)
    with transaction.atomic():
        _lock_metering()
        if connection.vendor == "postgresql":
            return _usage_sync_postgresql(start, end, wanted)
        existing = {(dep_id, hour, spec_id, rate): (pk, (secs, currency, price))
                    for pk, dep_id, hour, spec_id, rate, secs, currency, price in UsageRecord.objects.filter(
                        hour_start__gte=start, hour_start__lt=end).values_list(
                        "pk", "deployment_id", "hour_start", "spec_id", "rate", "seconds", "currency",
                        "hourly_price")}
        stale = [pk for key, (pk, _) in existing.items() if key not in wanted]
        changed = [(key, row) for key, row in wanted.items()
                   if key not in existing or existing[key][1] != row[1:]]
        if stale:
            UsageRecord.objects.filter(pk__in=stale).delete()
        if changed:
            _usage_upsert(changed)
    return len(stale) + len(changed)


def _steady_row(state: Transition | None, currency: str,
                prices: dict[tuple[str, str], SpecPrice]) -> tuple[str, str, Decimal] | None:
    """(spec, rate, per-hour price of the rate) of a whole hour in ``state``; None when it is free."""
    rate = RATE_OF_STATUS.get(state.to_status) if state is not None else None
    if state is None or rate is None:
        return None
    price = prices[(state.spec_id, currency)]
    return state.spec_id, rate, price.stopped_hourly if rate == STOPPED else price.hourly


_NEW_USAGE_TABLE = """
    CREATE TEMP TABLE billing_usage_new (deployment_id text, hour_start timestamptz, spec_id text, rate text,
                                         organization_id text, seconds integer, currency text, hourly_price numeric)
    ON COMMIT DROP
"""
_NEW_USAGE_TYPES = ["text", "timestamptz", "text", "text", "text", "int4", "text", "numeric"]
_DELETE_VANISHED_SQL = """
    DELETE FROM billing_usagerecord AS u WHERE u.hour_start >= %s AND u.hour_start < %s
    AND NOT EXISTS (SELECT FROM billing_usage_new AS n WHERE n.deployment_id = u.deployment_id
                    AND n.hour_start = u.hour_start AND n.spec_id = u.spec_id AND n.rate = u.rate)
"""
# Only new and changed rows reach the upsert: ON CONFLICT DO UPDATE locks (writes) every row it meets, even
# one its WHERE would leave alone, so an unchanged rerun would rewrite the whole range.
_UPSERT_CHANGED_SQL = """
    INSERT INTO billing_usagerecord (deployment_id, hour_start, spec_id, rate, organization_id, seconds, currency,
                                     hourly_price, metered_at)
    SELECT n.*, %s FROM billing_usage_new AS n LEFT JOIN billing_usagerecord AS u ON n.deployment_id = u.deployment_id
        AND n.hour_start = u.hour_start AND n.spec_id = u.spec_id AND n.rate = u.rate
        AND u.hour_start >= %s AND u.hour_start < %s
    WHERE u.id IS NULL OR (u.seconds, u.currency, u.hourly_price) IS DISTINCT FROM (n.seconds, n.currency,
                                                                                    n.hourly_price)
    ON CONFLICT (deployment_id, hour_start, spec_id, rate) DO UPDATE SET seconds = EXCLUDED.seconds,
        currency = EXCLUDED.currency, hourly_price = EXCLUDED.hourly_price, metered_at = EXCLUDED.metered_at
"""


def _usage_sync_postgresql(start: datetime, end: datetime,
                           wanted: dict[tuple[str, datetime, str, str], tuple[str, int, str, Decimal]]) -> int:
    """Makes the usage rows of ``[start, end)`` exactly ``wanted``, comparing in the database: the rows are
    streamed with a binary ``COPY`` into a temporary table (dropped at commit), vanished rows are deleted and
    new or changed ones upserted. Returns how many rows changed. Loading a range's rows into Python to compare
    cost more than metering it (10,000 deployments meter 6.5 million rows a month), and a model instance and
    placeholders per row several times the database's own work."""
    with connection.cursor() as cursor:
        cursor.execute(_NEW_USAGE_TABLE)
        with cursor.copy("COPY billing_usage_new FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(_NEW_USAGE_TYPES)
            for key, row in wanted.items():
                copy.write_row(key + row)
        cursor.execute("ANALYZE billing_usage_new")
        cursor.execute(_DELETE_VANISHED_SQL, [start, end])
        changed = cursor.rowcount
        cursor.execute(_UPSERT_CHANGED_SQL, [timezone.now(), start, end])
        changed += cursor.rowcount
        cursor.execute("DROP TABLE billing_usage_new")
    return changed


def _usage_upsert(rows: list[tuple[tuple[str, datetime, str, str], tuple[str, int, str, Decimal]]]) -> None:
    """Inserts or updates usage rows ``((deployment, hour, spec, rate), (organization, seconds, currency,
    price))`` with the ORM's upsert (SQLite, the embedded default; PostgreSQL syncs in the database)."""
    now = timezone.now()
    UsageRecord.objects.bulk_create(
        [UsageRecord(deployment_id=key[0], hour_start=key[1], spec_id=key[2], rate=key[3], organization_id=org,
                     seconds=secs, currency=currency, hourly_price=price, metered_at=now)
         for key, (org, secs, currency, price) in rows],
        batch_size=2000, update_conflicts=True, unique_fields=["deployment", "hour_start", "spec", "rate"],
        update_fields=["seconds", "currency", "hourly_price", "metered_at"])


_METERING_LOCK = 0x6D71_6D65  # "mqme"


def _lock_metering() -> None:
    """Serializes metering runs (the hourly beat and a monthly re-meter may overlap) until the transaction
    ends, so one never deletes rows another has just written from newer events. SQLite has a single writer."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_METERING_LOCK])


def usage_meter_recent(*, hours: int = 3, now: datetime | None = None) -> int:
    """Meters the last ``hours`` closed hours (re-metering catches events recorded late)."""
    current = _hour_floor(now or timezone.now())
    return usage_meter_range(start=current - HOUR * hours, end=current)


def usage_amount(*, seconds: int, hourly_price: Decimal, currency: str) -> Decimal:
    return money.usage_amount(seconds=seconds, hourly_price=hourly_price, currency=currency)


# --- subscriptions ----------------------------------------------------------------------------------
def _one_year_later(moment: datetime) -> datetime:
    try:
        return moment.replace(year=moment.year + 1)
    except ValueError:  # 29 February: the term ends on 28 February
        return moment.replace(year=moment.year + 1, day=28)


@transaction.atomic
def subscription_switch_to_annual(*, principal: Principal, deployment: Deployment, renew: bool) -> Subscription:
    """Hourly metering stops at this second, a 12-month term starts, its price is charged on the next invoice."""
    deployment = Deployment.objects.select_for_update().get(pk=deployment.pk, organization=principal.organization)
    if deployment.status in (S.DELETING, S.DELETED):
        raise errors.Conflict("A deployment being deleted cannot switch to annual billing.")
    Subscription.objects.get_or_create(deployment=deployment, defaults={"organization_id": deployment.organization_id})
    subscription = Subscription.objects.select_for_update().get(deployment=deployment)
    if subscription.mode == SubscriptionMode.ANNUAL:
        raise errors.Conflict("This deployment is already on annual billing.")
    currency = principal.organization.currency
    price = SpecPrice.objects.get(spec_id=deployment.spec_id, currency=currency).annual
    now = timezone.now()
    subscription.mode = SubscriptionMode.ANNUAL
    subscription.term_start = now
    subscription.term_end = _one_year_later(now)
    subscription.annual_price = price
    subscription.currency = currency
    subscription.renews = renew
    subscription.full_clean()
    subscription.save()
    AnnualCharge.objects.create(organization_id=deployment.organization_id, subscription=subscription,
                                deployment=deployment, spec_id=deployment.spec_id,
                                amount=money.quantize(price, currency), currency=currency,
                                term_start=subscription.term_start, term_end=subscription.term_end)
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


def subscriptions_prorate_scales(*, now: datetime | None = None) -> int:
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
    count = 0
    for event_id, dep_id, at, new_spec in _spec_changes(rows):
        term = next(((a, b) for a, b in terms[dep_id] if a <= at < b), None)
        if term is None or event_id in charged:
            continue
        if _prorate_scale(deployment_id=dep_id, event_id=event_id, at=at, new_spec=new_spec, term=term,
                          now=now) is not None:
            count += 1
    return count


@transaction.atomic
def _prorate_scale(*, deployment_id: str, event_id: str, at: datetime, new_spec: str,
                   term: tuple[datetime, datetime], now: datetime) -> AnnualCharge | None:
    term_charge = AnnualCharge.objects.select_related("deployment__organization").get(
        kind=ChargeKind.TERM, deployment_id=deployment_id, term_start=term[0])
    # The subscription lock serializes concurrent runs; the unique source event is the last line of defence.
    subscription = Subscription.objects.select_for_update().get(pk=term_charge.subscription_id)
    if AnnualCharge.objects.filter(source_event_id=event_id).exists():
        return None
    paid = (AnnualCharge.objects.filter(subscription=subscription, term_start=term[0],
                                        kind__in=[ChargeKind.TERM, ChargeKind.PRORATION])
            .exclude(effective_at__gt=at)
            .order_by(F("effective_at").desc(nulls_last=True), "-created_at").first())
    paid_spec = paid.spec_id if paid is not None else term_charge.spec_id
    if paid_spec == new_spec:
        return None
    currency = term_charge.currency
    prices = {p.spec_id: p.annual for p in SpecPrice.objects.filter(spec_id__in=[paid_spec, new_spec],
                                                                     currency=currency)}
    term_seconds = int((term[1] - term[0]).total_seconds())
    remaining = int((term[1] - at).total_seconds())
    amount = money.quantize((prices[new_spec] - prices[paid_spec]) * remaining / term_seconds, currency)
    charge = AnnualCharge.objects.create(
        organization_id=term_charge.organization_id, subscription=subscription,
        deployment_id=term_charge.deployment_id, kind=ChargeKind.PRORATION, spec_id=new_spec,
        previous_spec_id=paid_spec, amount=amount, currency=currency, term_start=term[0], term_end=term[1],
        effective_at=at, source_event_id=event_id, created_at=now)
    if subscription.mode == SubscriptionMode.ANNUAL and subscription.term_start == term[0]:
        subscription.annual_price = prices[new_spec]
        subscription.save(update_fields=["annual_price", "updated_at"])
    audit_record(principal=Principal.for_system(term_charge.deployment.organization), action="subscription.prorate",
                 target=term_charge.deployment,
                 changes={"spec": [paid_spec, new_spec], "amount": str(amount), "currency": currency,
                          "effective_at": at.isoformat(), "event": event_id})
    return charge


# --- invoices ---------------------------------------------------------------------------------------
def _month_after(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def _as_utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _next_number(*, site: str, year: int) -> str:
    InvoiceCounter.objects.get_or_create(site=site, year=year)
    # Locked until the invoice commits: a rolled-back invoice gives its number back, so there are no gaps.
    counter = InvoiceCounter.objects.select_for_update().get(site=site, year=year)
    counter.last_number += 1
    counter.save(update_fields=["last_number"])
    return f"MQ-{site.upper()}-{year}-{counter.last_number:06d}"


_RATE_LABEL = {"running": "hourly", "stopped": "stopped (storage)"}


def _charge_description(charge: AnnualCharge) -> str:
    who = f"{charge.deployment.name} ({charge.deployment_id})"
    if charge.kind == ChargeKind.PRORATION:
        what = "upgrade charge" if charge.amount >= 0 else "downgrade credit"
        return (f"{who}, {what}: {charge.previous_spec_id} to {charge.spec_id} from {charge.effective_at:%Y-%m-%d}, "
                f"prorated to the end of the annual term {charge.term_end:%Y-%m-%d}")
    if charge.kind == ChargeKind.CARRIED_CREDIT:
        return f"Credit brought forward from invoice {charge.source_invoice.number}"
    return f"{who}, annual term {charge.term_start:%Y-%m-%d} to {charge.term_end:%Y-%m-%d}"


_USAGE_LINE_FIELDS = ("deployment_id", "deployment__name", "spec_id", "spec__name", "rate", "hourly_price")
_USAGE_LINE_ORDER = ("deployment__name", "deployment_id", "spec_id", "rate", "hourly_price")


def _usage_lines(usage):
    """Seconds per deployment, spec, rate and price of ``usage`` (a UsageRecord queryset), in line order."""
    return usage.values(*_USAGE_LINE_FIELDS).annotate(total_seconds=Sum("seconds")).order_by(*_USAGE_LINE_ORDER)


def _usage_lines_by_organization(start: datetime, end: datetime) -> dict[str, list[dict[str, Any]]]:
    """:func:`_usage_lines` of every organization at once: one aggregate on the usage columns alone (grouping
    by the joined names sorted all the month's rows on disk), the names looked up after, and each
    organization's rows put in the order the database gives ``(deployment name, deployment, spec)``."""
    sums = list(UsageRecord.objects.filter(hour_start__gte=start, hour_start__lt=end)
                .values("organization_id", "deployment_id", "spec_id", "rate", "hourly_price")
                .annotate(total_seconds=Sum("seconds")).order_by())
    deployments = {dep_id: (rank, name) for rank, (dep_id, name) in enumerate(
        Deployment.objects.filter(id__in={r["deployment_id"] for r in sums}).order_by("name", "id")
        .values_list("id", "name"))}
    specs = {spec_id: (rank, name) for rank, (spec_id, name) in enumerate(
        Spec.objects.filter(id__in={r["spec_id"] for r in sums}).order_by("id").values_list("id", "name"))}
    # Rates are lowercase ASCII and prices numbers: every collation orders them as Python does.
    sums.sort(key=lambda r: (deployments[r["deployment_id"]][0], specs[r["spec_id"]][0], r["rate"],
                             r["hourly_price"]))
    usage: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in sums:
        row["deployment__name"] = deployments[row["deployment_id"]][1]
        row["spec__name"] = specs[row["spec_id"]][1]
        usage[row.pop("organization_id")].append(row)
    return usage


@transaction.atomic
def invoice_generate(*, account: BillingAccount, period_start: date,
                     _usage: list[dict[str, Any]] | None = None) -> Invoice | None:
    """The account's invoice for the month starting ``period_start``; a rerun returns the same invoice.

    None when there is nothing to charge (no number is used up). Lines: hours per deployment, spec and rate
    (running, stopped), and annual charges not yet invoiced (terms, prorated scales, credits); each line
    rounded half-up, VAT on the subtotal.

    Credits (downgrades) never make an invoice negative: when they exceed the charges, a last line carries
    the rest forward (subtotal 0) and a ``carried_credit`` charge brings it to the next invoice. An account
    with credits and nothing to charge gets no invoice; its credits wait for the next one.
    """
    if period_start.day != 1:
        raise errors.ValidationFailed("An invoice period starts on the 1st of a month.")
    period_end = _month_after(period_start)
    if _as_utc(period_end) > timezone.now():
        raise errors.Conflict("The period is not closed yet.")
    account = BillingAccount.objects.select_for_update().select_related("organization").get(pk=account.pk)
    existing = Invoice.objects.filter(account=account, period_start=period_start).first()
    if existing is not None:
        return existing
    org: Organization = account.organization
    currency = org.currency
    lines: list[InvoiceLine] = []
    # ``_usage``: the same rows read for every organization at once by invoices_generate_for_month.
    usage = _usage if _usage is not None else _usage_lines(UsageRecord.objects.filter(
        organization=org, hour_start__gte=_as_utc(period_start), hour_start__lt=_as_utc(period_end)))
    for row in usage:
        seconds = row["total_seconds"]
        lines.append(InvoiceLine(
            description=(f"{row['deployment__name']} ({row['deployment_id']}), {row['spec__name']}, "
                         f"{_RATE_LABEL[row['rate']]}"),
            quantity=(Decimal(seconds) / Decimal(3600)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP),
            unit="hour", unit_price=row["hourly_price"], deployment_id=row["deployment_id"],
            amount=usage_amount(seconds=seconds, hourly_price=row["hourly_price"], currency=currency)))
    charges = list(AnnualCharge.objects.select_for_update(of=("self",)).filter(
        organization=org, invoice__isnull=True, created_at__lt=_as_utc(period_end))
        .select_related("deployment", "source_invoice").order_by("created_at", "id"))
    for charge in charges:
        lines.append(InvoiceLine(
            description=_charge_description(charge), quantity=Decimal(1),
            unit="credit" if charge.amount < 0 else "year" if charge.kind == ChargeKind.TERM else "charge",
            unit_price=charge.amount, amount=charge.amount,
            deployment_id=None if charge.kind == ChargeKind.CARRIED_CREDIT else charge.deployment_id))
    if all(line.amount < 0 for line in lines):  # nothing at all, or only credits: those wait
        return None
    subtotal = sum((line.amount for line in lines), Decimal("0.00"))
    carried = -subtotal if subtotal < 0 else None
    if carried is not None:
        lines.append(InvoiceLine(description="Credit carried forward to the next invoice", quantity=Decimal(1),
                                 unit="credit", unit_price=carried, amount=carried))
        subtotal = Decimal("0.00")
    treatment = money.vat_treatment(site=org.site, customer_country=account.country or org.country,
                                    vat_number_valid=account.vat_status == VatStatus.VALID and bool(account.vat_number),
                                    tax_exempt=account.tax_exempt, on=period_end - timedelta(days=1))
    vat = money.vat_amount(subtotal, treatment.rate, currency)
    now = timezone.now()
    invoice = Invoice.objects.create(
        organization=org, account=account, number=_next_number(site=org.site, year=now.year),
        period_start=period_start, period_end=period_end, currency=currency, subtotal=subtotal,
        vat_rate=treatment.rate, vat_amount=vat, vat_note=treatment.note, total=subtotal + vat,
        legal_name=account.legal_name, address=account.address, country=account.country or org.country,
        vat_number=account.vat_number, issued_at=now)
    for position, line in enumerate(lines, start=1):
        line.invoice, line.position = invoice, position
    InvoiceLine.objects.bulk_create(lines)
    AnnualCharge.objects.filter(pk__in=[c.pk for c in charges]).update(invoice=invoice)
    if carried is not None:
        last_credit = next(c for c in reversed(charges) if c.amount < 0)
        AnnualCharge.objects.create(
            organization=org, subscription_id=last_credit.subscription_id, deployment_id=last_credit.deployment_id,
            kind=ChargeKind.CARRIED_CREDIT, spec_id=last_credit.spec_id, amount=-carried, currency=currency,
            term_start=last_credit.term_start, term_end=last_credit.term_end, source_invoice=invoice,
            created_at=now)
    audit_record(principal=Principal.for_system(org), action="invoice.issue", target=invoice,
                 changes={"number": invoice.number, "total": str(invoice.total), "currency": currency})
    return invoice


def invoices_generate_for_month(*, period_start: date) -> int:
    """Invoices every organization with usage or pending annual charges in the month; returns how many."""
    start, end = _as_utc(period_start), _as_utc(_month_after(period_start))
    usage = _usage_lines_by_organization(start, end)
    org_ids = set(usage) | set(AnnualCharge.objects.filter(invoice__isnull=True, created_at__lt=end)
                               .values_list("organization_id", flat=True).distinct())
    accounts = {a.organization_id: a for a in BillingAccount.objects.filter(organization_id__in=org_ids)}
    count = 0
    for org_id in sorted(org_ids):
        account = accounts.get(org_id) or BillingAccount.objects.get_or_create(organization_id=org_id)[0]
        if invoice_generate(account=account, period_start=period_start, _usage=usage.get(org_id, [])) is not None:
            count += 1
    return count


# --- operators --------------------------------------------------------------------------------------
@transaction.atomic
def billing_account_operator_update(*, principal: Principal, account: BillingAccount, tax_exempt: bool | None = None,
                                    vat_status: str | None = None) -> BillingAccount:
    """Operator-only changes: the tax-exempt flag and a VAT status confirmed outside the API (e.g. in VIES)."""
    account = BillingAccount.objects.select_for_update().get(pk=account.pk)
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
                                                                  _one_year_later(subscription.term_end))
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


# --- Stripe: customer and card -------------------------------------------------------------------
def _account_locked(account_id: str) -> BillingAccount:
    return BillingAccount.objects.select_for_update(of=("self",)).select_related("organization").get(pk=account_id)


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
        locked = _account_locked(account.pk)
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
        locked = _account_locked(account.pk)
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
        _enqueue_collect(invoice_id)
    return locked


def _enqueue_collect(invoice_id: str) -> None:
    from billing.tasks import invoice_collect

    transaction.on_commit(lambda: invoice_collect.delay(invoice_id))


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
        customer_id = stripe_customer_ensure(account=account)
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
    payment = Payment.objects.select_for_update().get(pk=payment_id)
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
        account = _account_locked(invoice.account_id)
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
    dunning_clear_if_settled(account_id=invoice.account_id)


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
        row = StripeEvent.objects.select_for_update().get(pk=row.pk)
        if not created:
            row.deliveries += 1
            row.save(update_fields=["deliveries"])
        if row.processed_at is not None:
            return row, False
        row.outcome, failed_account = _stripe_event_handle(data)
        row.processed_at = timezone.now()
        row.save(update_fields=["outcome", "processed_at"])
    if failed_account is not None:
        dunning_warn(account_id=failed_account)
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
        payment = payment_record_outcome(payment_id=payment.pk, status=status, intent_id=obj.get("id") or "",
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
            account = payment_method_setup_complete(account=account, setup_intent=obj)
        except stripe_gateway.StripeUnavailable:
            raise  # 503: Stripe delivers the event again later
        except errors.DomainError as exc:
            # Acknowledged: delivering it again would be refused the same way.
            return f"refused: {exc.detail}"[:300], None
        return f"card {account.card_brand} {account.card_last4} on {account.pk}", None
    return f"ignored: {kind}", None


# --- dunning -------------------------------------------------------------------------------------
def dunning_warn(*, account_id: str) -> bool:
    """Mails the payment-failed warning to the owners and billing members, once per unpaid episode."""
    with transaction.atomic():
        account = _account_locked(account_id)
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
    from deployments.services import deployment_stop

    now = now or timezone.now()
    with transaction.atomic():
        account = _account_locked(account_id)
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
    account = _account_locked(account_id)
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
# --- budgets ----------------------------------------------------------------------------------------
BUDGET_THRESHOLDS = (50, 80, 100)
BUDGET_SEVERITY = {50: "info", 80: "warning", 100: "critical"}
BUDGET_EVENT = "budget.threshold_crossed"


def _budget_invalid(field: str, message: str) -> errors.ValidationFailed:
    return errors.ValidationFailed("The request has invalid fields.", errors={field: [message]})


def _budget_amount(amount: Decimal, currency: str) -> Decimal:
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
        raise _budget_invalid("amount", "Must be greater than 0.")
    if money.quantize(amount, currency) != amount:
        raise _budget_invalid("amount", f"At most {money.minor_unit(currency)} decimal places for {currency}.")
    return amount


def _budget_channels(principal: Principal, channel_ids: list[str]) -> list:
    channels = list(alert_selectors.channel_list(principal=principal).filter(pk__in=channel_ids))
    missing = sorted(set(channel_ids) - {c.id for c in channels})
    if missing:
        raise _budget_invalid("channels", f"No alert channel(s) {', '.join(missing)}.")
    return channels


@transaction.atomic
def budget_create(*, principal: Principal, amount: Decimal, project: str | None = None,
                  channels: list[str] | None = None, enabled: bool = True) -> Budget:
    """A monthly budget for the organization (``project`` None) or one project: one of each at most."""
    principal.require(Perm.BILLING_MANAGE)
    organization = principal.organization
    project_row = None
    if project is not None:
        project_row = Project.objects.filter(organization=organization, pk=project).first()
        if project_row is None or not principal.can_see_project(project_row.id):
            raise _budget_invalid("project", f"No project {project}.")
    elif principal.is_project_limited:
        raise errors.PermissionDenied("A member limited to projects sets budgets of those projects only.")
    amount = _budget_amount(amount, organization.currency)
    channel_rows = _budget_channels(principal, channels or [])
    # Locks the organization row: two concurrent creates of the same scope queue here instead of one
    # failing on the unique constraint with a 500.
    Organization.objects.select_for_update().filter(pk=organization.pk).first()
    if Budget.objects.filter(organization=organization, project=project_row).exists():
        scope = f"project {project_row.id}" if project_row else "the organization"
        raise errors.Conflict(f"There is already a budget for {scope}; change that one.")
    budget = Budget(organization=organization, project=project_row, amount=amount, enabled=enabled)
    budget.full_clean()
    budget.save()
    budget.channels.set(channel_rows)
    audit_record(principal=principal, action="budget.create", target=budget,
                 changes={"project": project, "amount": str(amount), "currency": organization.currency,
                          "channels": [c.id for c in channel_rows], "enabled": enabled})
    return budget


@transaction.atomic
def budget_update(*, principal: Principal, budget: Budget, amount: Decimal | None = None,
                  channels: list[str] | None = None, enabled: bool | None = None) -> Budget:
    principal.require(Perm.BILLING_MANAGE)
    budget = Budget.objects.select_for_update().select_related("organization").get(
        pk=budget.pk, organization=principal.organization)
    changes: dict[str, Any] = {}
    if amount is not None:
        amount = _budget_amount(amount, budget.organization.currency)
        if amount != budget.amount:
            changes["amount"] = [str(budget.amount), str(amount)]
            budget.amount = amount
    if enabled is not None and enabled != budget.enabled:
        changes["enabled"] = [budget.enabled, enabled]
        budget.enabled = enabled
    if channels is not None:
        rows = _budget_channels(principal, channels)
        before = sorted(budget.channels.values_list("id", flat=True))
        if sorted(c.id for c in rows) != before:
            changes["channels"] = [before, sorted(c.id for c in rows)]
            budget.channels.set(rows)
    budget.full_clean()
    budget.save()
    if "amount" in changes:
        # A threshold no longer reached under the new amount may notify again when it is reached; those
        # still reached stay recorded (no second notice for them this month).
        now = timezone.now()
        spent = selectors.budget_spent(budget=budget, now=now)
        budget.crossings.filter(month=selectors.month_start_of(now).date()).exclude(
            threshold__in=_thresholds_reached(spent, budget.amount)).delete()
    if changes:
        audit_record(principal=principal, action="budget.update", target=budget, changes=changes)
    return budget


@transaction.atomic
def budget_delete(*, principal: Principal, budget: Budget) -> None:
    principal.require(Perm.BILLING_MANAGE)
    audit_record(principal=principal, action="budget.delete", target=budget,
                 changes={"project": budget.project_id, "amount": str(budget.amount)})
    budget.delete()


def _thresholds_reached(spent: Decimal, amount: Decimal) -> list[int]:
    return [t for t in BUDGET_THRESHOLDS if spent * 100 >= amount * t]


def budgets_evaluate(*, now: datetime | None = None) -> int:
    """Records the thresholds each enabled budget has reached this month and notifies the new ones; returns
    how many notices went out. Reruns and concurrent runs notify nothing twice: the crossing row is unique
    per budget, month and threshold, and only the run that inserts it notifies. Several thresholds reached
    at once (a budget set below the month's spend, a big annual charge) send one notice, for the highest."""
    now = now or timezone.now()
    month = selectors.month_start_of(now).date()
    sent = 0
    for budget_id in Budget.objects.filter(enabled=True).values_list("id", flat=True):
        budget = Budget.objects.select_related("organization", "project").filter(pk=budget_id, enabled=True).first()
        if budget is None:
            continue
        spent = selectors.budget_spent(budget=budget, now=now)
        reached = _thresholds_reached(spent, budget.amount)
        if not reached:
            continue
        with transaction.atomic():
            new = []
            for threshold in reached:
                crossing, created = BudgetCrossing.objects.get_or_create(
                    budget=budget, month=month, threshold=threshold,
                    defaults={"spent": spent, "amount": budget.amount})
                if created:
                    new.append(crossing)
            if not new:
                continue
            top = max(new, key=lambda c: c.threshold)
            top.notified = True
            top.save(update_fields=["notified"])
            _budget_notify(budget=budget, threshold=top.threshold, spent=spent, now=now)
            sent += 1
    return sent


def _budget_notify(*, budget: Budget, threshold: int, spent: Decimal, now: datetime) -> None:
    currency = budget.organization.currency
    month = selectors.month_start_of(now)
    scope = f"project {budget.project.name}" if budget.project else f"organization {budget.organization.name}"
    base = settings.PUBLIC_BASE_URL.rstrip("/")
    title = f"Budget {threshold}% reached: {spent} of {budget.amount} {currency} ({scope}, {month:%B %Y})"
    summary = (f"The {month:%B %Y} spend of {scope} is {spent} {currency}, {threshold}% or more of its monthly "
               f"budget of {budget.amount} {currency} (before VAT).")
    details = {
        "budget": {"id": budget.id, "project": budget.project_id, "amount": str(budget.amount),
                   "currency": currency},
        "threshold": threshold,
        "spent": str(spent),
        "amount": str(budget.amount),
        "currency": currency,
        "month": f"{month:%Y-%m}",
        "links": {"budget": f"{base}/api/v1/budgets/{budget.id}", "console": base + reverse("console:billing")},
    }
    facts = [("Budget", f"{budget.amount} {currency} per month"), ("Spent", f"{spent} {currency}"),
             ("Threshold", f"{threshold}%"), ("Scope", scope), ("Month", f"{month:%Y-%m}")]
    kwargs = {"organization": budget.organization, "event_type": BUDGET_EVENT, "title": title, "summary": summary,
              "details": details, "severity": BUDGET_SEVERITY[threshold], "facts": facts, "now": now,
              "dedup_key": f"mqcloud-budget-{budget.id}-{month:%Y-%m}-{threshold}"}
    channels = [c for c in budget.channels.all() if c.enabled]
    if channels:
        notices.organization_notice_send(channels=channels, **kwargs)
    else:
        notices.organization_notice_email(recipients=selectors.budget_notice_recipients(budget=budget), **kwargs)
