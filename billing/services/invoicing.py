"""Monthly invoices: numbering, lines from usage and annual charges, generation for every account."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import OuterRef, QuerySet, Subquery, Sum
from django.utils import timezone

from billing import money, periods
from billing.models import (
    AnnualCharge,
    BillingAccount,
    ChargeKind,
    Invoice,
    InvoiceCounter,
    InvoiceLine,
    UsageRecord,
    VatStatus,
)
from billing.services import usage as usage_services
from controlplane import errors
from deployments.models import Deployment, Spec
from projects.audit import audit_event, audit_record_many
from projects.models import Organization
from projects.tenancy import Principal

# --- invoices ---------------------------------------------------------------------------------------
INVOICE_BATCH = 500  # accounts invoiced per transaction by the monthly run


def _numbers_allocate(*, sites: list[str], year: int) -> dict[str, Iterator[str]]:
    """The next invoice numbers of each site, one per entry of ``sites`` (in that order), for every site at once.

    The counters stay locked until the caller's transaction commits: a rolled-back run gives its numbers back,
    so there are no gaps. Counters are locked in site order, so two runs never wait on each other crosswise."""
    wanted = Counter(sites)
    # Created if missing without a savepoint each (a concurrent run creating the same counter is ignored).
    InvoiceCounter.objects.bulk_create([InvoiceCounter(site=site, year=year) for site in sorted(wanted)],
                                       ignore_conflicts=True)
    counters = list(InvoiceCounter.objects.select_for_update().filter(year=year, site__in=list(wanted))
                    .order_by("site"))
    numbers: dict[str, Iterator[str]] = {}
    for counter in counters:
        first = counter.last_number + 1
        counter.last_number += wanted[counter.site]
        numbers[counter.site] = iter([f"MQ-{counter.site.upper()}-{year}-{n:06d}"
                                      for n in range(first, counter.last_number + 1)])
    InvoiceCounter.objects.bulk_update(counters, ["last_number"])
    return numbers


_RATE_LABEL = {"running": "hourly", "stopped": "stopped (storage)"}


def charge_description(charge: AnnualCharge) -> str:
    """The invoice line's words for an annual charge (a term, a prorated scale, a credit brought forward)."""
    who = f"{charge.deployment.name} ({charge.deployment_id})"
    if charge.kind == ChargeKind.PRORATION:
        what = "upgrade charge" if charge.amount >= 0 else "downgrade credit"
        return (f"{who}, {what}: {charge.previous_spec_id} to {charge.spec_id} from {charge.effective_at:%Y-%m-%d}, "
                f"prorated to the end of the annual term {charge.term_end:%Y-%m-%d}")
    if charge.kind == ChargeKind.CARRIED_CREDIT:
        # A carried credit always has its source invoice (only the other kinds leave it null).
        return f"Credit brought forward from invoice {charge.source_invoice.number}"  # type: ignore[union-attr]
    return f"{who}, annual term {charge.term_start:%Y-%m-%d} to {charge.term_end:%Y-%m-%d}"


_USAGE_LINE_FIELDS = ("deployment_id", "deployment__name", "spec_id", "spec__name", "rate", "hourly_price")
_USAGE_LINE_ORDER = ("deployment__name", "deployment_id", "spec_id", "rate", "hourly_price")


def _usage_lines(usage: QuerySet[UsageRecord]) -> QuerySet[UsageRecord, dict[str, Any]]:
    """Seconds per deployment, spec, rate and price of ``usage`` (a UsageRecord queryset), in line order."""
    return usage.values(*_USAGE_LINE_FIELDS).annotate(total_seconds=Sum("seconds")).order_by(*_USAGE_LINE_ORDER)


def _deployment_ranks(ids: set[str], start: datetime, end: datetime) -> dict[str, tuple[int, str]]:
    """Each of ``ids``' place in line order (name, then id, as the database sorts them) and its name. The
    deployments alive in ``[start, end)`` are every one with usage there: they are read by that, not by a list
    of 10,000 ids (a statement that long took longer to send and parse than to run); any other is added."""
    alive = Deployment.objects.filter(created_at__lt=end).exclude(deleted_at__lt=start)
    rows = [(dep_id, name) for dep_id, name in alive.order_by("name", "id").values_list("id", "name")
            if dep_id in ids]
    if ids - {dep_id for dep_id, _ in rows}:  # usage of a deployment whose dates were changed since
        rows = list(Deployment.objects.filter(id__in=ids).order_by("name", "id")
                    .values_list("id", "name"))
    return {dep_id: (rank, name) for rank, (dep_id, name) in enumerate(rows)}


def _usage_lines_by_organization(start: datetime, end: datetime,
                                 summed: list[dict[str, Any]] | None = None) -> dict[str, list[dict[str, Any]]]:
    """:func:`_usage_lines` of every organization at once: one aggregate on the usage columns alone (grouping
    by the joined names sorted all the month's rows on disk), the names looked up after, and each
    organization's rows put in the order the database gives ``(deployment name, deployment, spec)``.
    ``summed``: that aggregate made already (the month close's check, ``usage.MonthUsage.lines``)."""
    sums: list[Any] = [dict(row) for row in summed] if summed is not None else list(
        UsageRecord.objects.filter(hour_start__gte=start, hour_start__lt=end)
        .values("organization_id", "deployment_id", "spec_id", "rate", "hourly_price")
        .annotate(total_seconds=Sum("seconds")).order_by())
    deployments = _deployment_ranks({r["deployment_id"] for r in sums}, start, end)
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


@dataclass(slots=True)
class DraftLine:
    """A line of an invoice not issued yet, as the preview shows it and issuing writes it (plain values: a
    month's run builds tens of thousands, and a model instance each was most of its time)."""

    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount: Decimal
    deployment_id: str | None = None


@dataclass
class InvoiceDraft:
    """What an invoice run makes of a period: its lines, VAT and total, before anything is saved or numbered.

    ``charges``: the annual charges the invoice takes in; ``carried``: the credit brought to the next invoice
    when credits exceed the charges (the last line already says so; the subtotal is then 0).
    """

    period_start: date
    period_end: date
    currency: str
    lines: list[DraftLine]
    subtotal: Decimal
    vat: money.VatTreatment
    vat_amount: Decimal
    charges: list[AnnualCharge]
    carried: Decimal | None

    @property
    def total(self) -> Decimal:
        return self.subtotal + self.vat_amount


def _pending_charges(*, org_ids: Iterable[str], period_start: date, lock: bool) -> dict[str, list[AnnualCharge]]:
    """The annual charges not invoiced yet that the invoices of ``org_ids`` for the month from ``period_start``
    take in, per organization, in line order. ``lock``: the run locks them; a preview reads them as they are."""
    pending = AnnualCharge.objects.filter(organization_id__in=list(org_ids), invoice__isnull=True,
                                          created_at__lt=periods.as_utc(periods.month_after(period_start)))
    if lock:
        pending = pending.select_for_update(of=("self",))
    charges: dict[str, list[AnnualCharge]] = defaultdict(list)
    for charge in pending.select_related("deployment", "source_invoice").order_by("organization_id", "created_at",
                                                                                  "id"):
        charges[charge.organization_id].append(charge)
    return charges


def _invoice_draft(*, account: BillingAccount, period_start: date, usage: Iterable[dict[str, Any]],
                   charges: list[AnnualCharge]) -> InvoiceDraft | None:
    """The lines and VAT of ``account``'s invoice for the month from ``period_start`` from its ``usage`` lines and
    pending annual ``charges``; None when there is nothing to charge."""
    org: Organization = account.organization
    currency = org.currency
    period_end = periods.month_after(period_start)
    lines: list[DraftLine] = []
    for row in usage:
        seconds = row["total_seconds"]
        lines.append(DraftLine(
            description=(f"{row['deployment__name']} ({row['deployment_id']}), {row['spec__name']}, "
                         f"{_RATE_LABEL[row['rate']]}"),
            quantity=(Decimal(seconds) / Decimal(3600)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP),
            unit="hour", unit_price=row["hourly_price"], deployment_id=row["deployment_id"],
            amount=usage_services.usage_amount(seconds=seconds, hourly_price=row["hourly_price"], currency=currency)))
    for charge in charges:
        lines.append(DraftLine(
            description=charge_description(charge), quantity=Decimal(1),
            unit="credit" if charge.amount < 0 else "year" if charge.kind == ChargeKind.TERM else "charge",
            unit_price=charge.amount, amount=charge.amount,
            deployment_id=None if charge.kind == ChargeKind.CARRIED_CREDIT else charge.deployment_id))
    if all(line.amount < 0 for line in lines):  # nothing at all, or only credits: those wait
        return None
    subtotal = sum((line.amount for line in lines), Decimal("0.00"))
    carried = -subtotal if subtotal < 0 else None
    if carried is not None:
        lines.append(DraftLine(description="Credit carried forward to the next invoice", quantity=Decimal(1),
                                 unit="credit", unit_price=carried, amount=carried))
        subtotal = Decimal("0.00")
    treatment = money.vat_treatment(site=org.site, customer_country=account.country or org.country,
                                    vat_number_valid=account.vat_status == VatStatus.VALID and bool(account.vat_number),
                                    tax_exempt=account.tax_exempt, on=period_end - timedelta(days=1))
    return InvoiceDraft(period_start=period_start, period_end=period_end, currency=currency, lines=lines,
                        subtotal=subtotal, vat=treatment, charges=charges, carried=carried,
                        vat_amount=money.vat_amount(subtotal, treatment.rate, currency))


def _month_usage(org: Organization, period_start: date) -> QuerySet[UsageRecord, dict[str, Any]]:
    return _usage_lines(UsageRecord.objects.filter(
        organization=org, hour_start__gte=periods.as_utc(period_start),
        hour_start__lt=periods.as_utc(periods.month_after(period_start))))


def invoice_preview(*, account: BillingAccount, now: datetime | None = None) -> InvoiceDraft | None:
    """A dry run of the invoice run for the month still under way: the lines and VAT the run on the 1st would
    produce from what is metered and charged so far. Nothing is saved, numbered or locked."""
    period_start = periods.month_start_of(now or timezone.now()).date()
    account = BillingAccount.objects.select_related("organization").get(pk=account.pk)
    charges = _pending_charges(org_ids=[account.organization_id], period_start=period_start, lock=False)
    return _invoice_draft(account=account, period_start=period_start,
                          usage=_month_usage(account.organization, period_start),
                          charges=charges[account.organization_id])


def _period_check(period_start: date) -> None:
    if period_start.day != 1:
        raise errors.ValidationFailed("An invoice period starts on the 1st of a month.")
    if periods.as_utc(periods.month_after(period_start)) > timezone.now():
        raise errors.Conflict("The period is not closed yet.")


def _accounts_locked() -> QuerySet[BillingAccount]:
    # Each account locked before its invoice is looked for: a concurrent run waits, then finds the invoice.
    return BillingAccount.objects.select_for_update(of=("self",)).select_related("organization")


@transaction.atomic
def invoice_generate(*, account: BillingAccount, period_start: date) -> Invoice | None:
    """The account's invoice for the month starting ``period_start``; a rerun returns the same invoice.

    None when there is nothing to charge (no number is used up). Lines: hours per deployment, spec and rate
    (running, stopped), and annual charges not yet invoiced (terms, prorated scales, credits); each line
    rounded half-up, VAT on the subtotal.

    Credits (downgrades) never make an invoice negative: when they exceed the charges, a last line carries
    the rest forward (subtotal 0) and a ``carried_credit`` charge brings it to the next invoice. An account
    with credits and nothing to charge gets no invoice; its credits wait for the next one.
    """
    _period_check(period_start)
    account = _accounts_locked().get(pk=account.pk)
    existing = Invoice.objects.filter(account=account, period_start=period_start).first()
    if existing is not None:
        return existing
    usage = {account.organization_id: list(_month_usage(account.organization, period_start))}
    return _invoices_issue(accounts=[account], period_start=period_start, usage=usage).get(account.pk)


def _invoices_issue(*, accounts: list[BillingAccount], period_start: date,
                    usage: dict[str, list[dict[str, Any]]]) -> dict[str, Invoice]:
    """Issues the invoices of ``accounts`` (locked, none invoiced for the period yet), numbered in the order given;
    returns them by account id. A statement per kind of row, whatever the number of accounts: drafts first, then
    the numbers, invoices, lines, the charges taken in, credits carried forward and the audit events."""
    charges = _pending_charges(org_ids=[a.organization_id for a in accounts], period_start=period_start, lock=True)
    drafts = [(account, draft) for account in accounts
              if (draft := _invoice_draft(account=account, period_start=period_start,
                                          usage=usage.get(account.organization_id, []),
                                          charges=charges[account.organization_id])) is not None]
    if not drafts:
        return {}
    now = timezone.now()
    numbers = _numbers_allocate(sites=[account.organization.site for account, _ in drafts], year=now.year)
    invoices: dict[str, Invoice] = {}
    lines: list[tuple[str, int, DraftLine]] = []
    taken: list[AnnualCharge] = []
    carried: list[AnnualCharge] = []
    events = []
    for account, draft in drafts:
        org: Organization = account.organization
        invoice = invoices[account.pk] = Invoice(
            organization=org, account=account, number=next(numbers[org.site]),
            period_start=period_start, period_end=draft.period_end, currency=draft.currency, subtotal=draft.subtotal,
            vat_rate=draft.vat.rate, vat_amount=draft.vat_amount, vat_note=draft.vat.note, total=draft.total,
            legal_name=account.legal_name, address=account.address, country=account.country or org.country,
            vat_number=account.vat_number, issued_at=now)
        lines += ((invoice.pk, position, line) for position, line in enumerate(draft.lines, start=1))
        for charge in draft.charges:
            charge.invoice = invoice
        taken += draft.charges
        if draft.carried is not None:
            last_credit = next(c for c in reversed(draft.charges) if c.amount < 0)
            carried.append(AnnualCharge(
                organization=org, subscription_id=last_credit.subscription_id,
                deployment_id=last_credit.deployment_id, kind=ChargeKind.CARRIED_CREDIT, spec_id=last_credit.spec_id,
                amount=-draft.carried, currency=draft.currency, term_start=last_credit.term_start,
                term_end=last_credit.term_end, source_invoice=invoice, created_at=now))
        events.append(audit_event(principal=Principal.for_system(org), action="invoice.issue", target=invoice,
                                  changes={"number": invoice.number, "total": str(invoice.total),
                                           "currency": draft.currency}))
    Invoice.objects.bulk_create(invoices.values())
    _lines_insert(lines)
    if taken:
        # Each charge goes to its organization's invoice of the period (one per account, and an account per
        # organization): one statement, rather than a CASE branch per charge (slow to build, slower to send).
        AnnualCharge.objects.filter(pk__in=[charge.pk for charge in taken]).update(invoice_id=Subquery(
            Invoice.objects.filter(organization_id=OuterRef("organization_id"), period_start=period_start)
            .values("id")))
    AnnualCharge.objects.bulk_create(carried)
    audit_record_many(events)
    return invoices


_LINE_COLUMNS = ("invoice_id", "position", "description", "quantity", "unit", "unit_price", "amount",
                 "deployment_id")


def _lines_insert(lines: list[tuple[str, int, DraftLine]]) -> None:
    """Writes ``(invoice id, position, line)`` rows. On PostgreSQL one ``INSERT … SELECT FROM unnest()`` of a
    column array each: ``bulk_create`` prepared every field of every line through its model field, two thirds
    of a month's invoicing at 10,000 deployments (12,500 lines). Values are the draft's own (Decimals already
    rounded to the columns' places, text within their lengths)."""
    if not lines:
        return
    if connection.vendor != "postgresql":
        InvoiceLine.objects.bulk_create(InvoiceLine(
            invoice_id=invoice_id, position=position, description=line.description, quantity=line.quantity,
            unit=line.unit, unit_price=line.unit_price, amount=line.amount, deployment_id=line.deployment_id)
            for invoice_id, position, line in lines)
        return
    columns: list[Any] = [[invoice_id for invoice_id, _, _ in lines], [position for _, position, _ in lines]]
    columns += [[getattr(line, name) for _, _, line in lines] for name in _LINE_COLUMNS[2:]]
    table = InvoiceLine._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(_LINE_COLUMNS)}) SELECT * FROM unnest("  # noqa: S608 (constants)
            "%s::text[], %s::smallint[], %s::text[], %s::numeric[], %s::text[], %s::numeric[], %s::numeric[], "
            "%s::text[])", columns)


def invoices_generate_for_month(*, period_start: date, batch_size: int = INVOICE_BATCH,
                                usage: usage_services.MonthUsage | None = None) -> int:
    """Invoices every organization with usage or pending annual charges in the month; returns how many (a rerun
    counts the invoices it finds). ``usage``: the month's rows as the month close's check summed them
    (``usage.usage_month_reconcile_and_sum``), so they are not read again; without it they are summed here.

    Organizations go in id order, ``batch_size`` accounts per transaction: numbers follow that order, and a run
    that dies midway kept the batches before (a rerun skips their invoices and numbers on from there) and gave
    back everything of the batch it was in."""
    _period_check(period_start)
    start, end = periods.as_utc(period_start), periods.as_utc(periods.month_after(period_start))
    if usage is not None and usage.period_start != period_start:
        raise ValueError("The usage summed is of another month.")
    lines = _usage_lines_by_organization(start, end, usage.lines if usage is not None else None)
    org_ids = sorted(set(lines) | set(AnnualCharge.objects.filter(invoice__isnull=True, created_at__lt=end)
                                      .values_list("organization_id", flat=True).distinct()))
    # Accounts are created lazily: the missing ones in one statement (a concurrent creator wins quietly).
    with_account = set(BillingAccount.objects.filter(organization_id__in=org_ids)
                       .values_list("organization_id", flat=True))
    BillingAccount.objects.bulk_create([BillingAccount(organization_id=org_id) for org_id in org_ids
                                        if org_id not in with_account], ignore_conflicts=True)
    return sum(_invoices_generate_batch(org_ids=org_ids[n:n + batch_size], period_start=period_start, usage=lines)
               for n in range(0, len(org_ids), batch_size))


@transaction.atomic
def _invoices_generate_batch(*, org_ids: list[str], period_start: date,
                             usage: dict[str, list[dict[str, Any]]]) -> int:
    accounts = list(_accounts_locked().filter(organization_id__in=org_ids).order_by("organization_id"))
    invoiced = set(Invoice.objects.filter(account__in=accounts, period_start=period_start)
                   .values_list("account_id", flat=True))
    issued = _invoices_issue(accounts=[a for a in accounts if a.pk not in invoiced], period_start=period_start,
                             usage=usage)
    return len(invoiced) + len(issued)
