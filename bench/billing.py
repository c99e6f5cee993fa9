#!/usr/bin/env python
"""Billing: meter and invoice one 30-day month (720 hours) for N deployments (default 10,000), as a ratio to
one SQL aggregate over the same usage rows measured in the same run.

The data is built with bulk inserts: organizations of ten deployments each, every deployment running
from before the month, then a mix: running all month, scaled mid-month, stopped mid-month (the storage
rate), switched to annual mid-month, and annual then scaled (a prorated charge). Timed, in-process and
through the production code paths:
- metering every hour of the month (``usage_meter_range``, what the hourly task runs, over 720 hours)
- prorating the scales of annual deployments and invoicing every organization (``invoices_generate_for_month``)
- the month close: the check of the month's usage rows against the lifecycle (``usage_month_reconcile_and_sum``,
  which meters again only deployments whose rows differ: none here, the hourly path metered them, and sums the
  rows as invoices group them), then the above, the invoices taking the check's sums instead of reading the rows
  again (as ``billing.services.closing.month_close`` does)
- baseline: ``SELECT organization_id, SUM(seconds * hourly_price / 3600) ... GROUP BY organization_id``

Usage: ``bench/billing.py [--deployments N]``. The functions below are also run by a smoke test on ~20
deployments, so the bench cannot rot.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

HERE = os.path.dirname(os.path.abspath(__file__))
if __name__ == "__main__":
    # This file is named like the billing app: find the app first, and harness.py last.
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE] + [HERE]

if TYPE_CHECKING:
    from billing.services.usage import MonthUsage

MONTH = date(2026, 4, 1)  # 30 days: 720 hours
MONTH_START = datetime(2026, 4, 1, tzinfo=UTC)
MONTH_END = datetime(2026, 5, 1, tzinfo=UTC)
PER_ORGANIZATION = 10
# The mix, by deployment index modulo 20: out of every 20 deployments...
SCALED = frozenset({1, 2, 3})  # 15% scaled (hourly) mid-month
STOPPED = frozenset({4, 5, 6})  # 15% stopped mid-month, stopped till the end
ANNUAL = frozenset({7, 8})  # 10% switched to annual mid-month
ANNUAL_SCALED = frozenset({9})  # 5% on annual from before the month, scaled mid-month (prorated)


@dataclass
class Built:
    deployments: int
    organizations: int
    events: int


def build(count: int) -> Built:
    """Bulk-creates ``count`` deployments and their histories; returns what it made."""
    from billing.models import AnnualCharge, BillingAccount, ChargeKind, Subscription, SubscriptionMode
    from deployments.models import Deployment, DeploymentEvent, Region, Spec, SpecPrice
    from projects.models import Organization, Project

    region = Region.objects.get(id="aws-us-east-1")
    specs = {s.id: s for s in Spec.objects.filter(id__in=["basic-1k", "basic-5k", "pro-1k", "pro-5k"])}
    annual_price = {p.spec_id: p.annual for p in SpecPrice.objects.filter(currency="USD")}
    organizations = Organization.objects.bulk_create(
        Organization(name=f"bench {n}", country="DE") for n in range(-(-count // PER_ORGANIZATION)))
    BillingAccount.objects.bulk_create(BillingAccount(organization=o, country="DE", legal_name=o.name)
                                       for o in organizations)
    projects = Project.objects.bulk_create(Project(organization=o, name="bench") for o in organizations)
    before = MONTH_START - timedelta(days=3)
    deployments, events, subscriptions, charges = [], [], [], []
    for n in range(count):
        kind = n % 20
        organization, project = organizations[n // PER_ORGANIZATION], projects[n // PER_ORGANIZATION]
        spec = specs["pro-1k" if kind in ANNUAL_SCALED else "basic-1k"]
        at = MONTH_START + timedelta(days=1 + n % 27, seconds=(n * 7919) % 86400)  # spread over the month
        final = spec
        deployment = Deployment(organization=organization, project=project, name=f"d{n}", region=region,
                                spec=spec, target_spec=spec, tier=spec.tier, status="running", node_cookie="c",
                                dashboard_password="p", created_at=before)
        history = [("pending", spec, before), ("provisioning", spec, before + timedelta(seconds=1)),
                   ("running", spec, before + timedelta(minutes=3))]
        if kind in SCALED or kind in ANNUAL_SCALED:
            final = specs["basic-5k" if kind in SCALED else "pro-5k"]
            history += [("scaling", spec, at), ("running", final, at + timedelta(minutes=7))]
        elif kind in STOPPED:
            history += [("stopping", spec, at), ("stopped", spec, at + timedelta(minutes=2))]
            deployment.status = "stopped"
        deployment.spec = deployment.target_spec = final
        deployments.append(deployment)
        events += [DeploymentEvent(organization=organization, deployment=deployment, to_status=status, spec=s,
                                   created_at=moment) for status, s, moment in history]
        if kind in ANNUAL or kind in ANNUAL_SCALED:
            term_start = at if kind in ANNUAL else MONTH_START - timedelta(days=40)
            term_end = term_start.replace(year=term_start.year + 1)
            subscription = Subscription(organization=organization, deployment=deployment,
                                        mode=SubscriptionMode.ANNUAL, term_start=term_start, term_end=term_end,
                                        annual_price=annual_price[spec.id], currency="USD")
            subscriptions.append(subscription)
            charges.append(AnnualCharge(organization=organization, subscription=subscription, deployment=deployment,
                                        kind=ChargeKind.TERM, spec=spec, amount=annual_price[spec.id], currency="USD",
                                        term_start=term_start, term_end=term_end, created_at=term_start))
    Deployment.objects.bulk_create(deployments, batch_size=2000)
    DeploymentEvent.objects.bulk_create(events, batch_size=5000)
    Subscription.objects.bulk_create(subscriptions, batch_size=2000)
    AnnualCharge.objects.bulk_create(charges, batch_size=2000)
    return Built(deployments=count, organizations=len(organizations), events=len(events))


def meter_month() -> int:
    """Every hour of the month through the production metering path; returns the rows written."""
    from billing.services.usage import usage_meter_range

    return usage_meter_range(start=MONTH_START, end=MONTH_END)


def check_month() -> MonthUsage:
    """The month close's check of the usage rows against the lifecycle; returns the rows it had to change and
    the month's sums, which the close's invoices take."""
    from billing.services.usage import usage_month_reconcile_and_sum

    return usage_month_reconcile_and_sum(period_start=MONTH)


def prorate_month() -> int:
    """The scales of annual deployments, prorated as the month close does; returns the charges made."""
    from billing.services.subscriptions import subscriptions_prorate_scales

    return subscriptions_prorate_scales(now=MONTH_END)


def invoice_accounts(usage: MonthUsage | None = None) -> int:
    """Every organization's invoice, as the month close makes them after prorating (from the check's ``usage``
    sums when given, else summing the rows itself); returns invoices."""
    from billing.services.invoicing import invoices_generate_for_month

    return invoices_generate_for_month(period_start=MONTH, usage=usage)


def invoice_month(usage: MonthUsage | None = None) -> int:
    """Scale prorations, then every organization's invoice, as the monthly task does; returns invoices."""
    prorate_month()
    return invoice_accounts(usage)


# What the month close reads: a fleet written in seconds gets the statistics autovacuum gives tables filled
# over months (without them the planner chose an index scan over every annual term per lifecycle interval).
ANALYZED = ("billing_usagerecord", "deployments_deployment", "deployments_deploymentevent", "billing_annualcharge",
            "billing_subscription", "projects_organization")


def analyze_usage() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ANALYZED:
            cursor.execute(f"ANALYZE {table}")


def baseline_sql() -> dict[str, Decimal]:
    """One SQL aggregate over the same usage rows: each organization's unrounded usage amount."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT organization_id, SUM(seconds * hourly_price / 3600) FROM billing_usagerecord "
            "WHERE hour_start >= %s AND hour_start < %s GROUP BY organization_id", [MONTH_START, MONTH_END])
        return dict(cursor.fetchall())


def invoiced_usage() -> dict[str, Decimal]:
    """What the invoices charge for usage (hour lines), per organization."""
    from django.db.models import Sum

    from billing.models import InvoiceLine

    return dict(InvoiceLine.objects.filter(unit="hour", invoice__period_start=MONTH)
                .values_list("invoice__organization_id").annotate(total=Sum("amount")))


def timed(call):
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def counted(call):
    """``timed``, and how many SQL statements the call sent (counted as they go: Django's query log keeps 9,000)."""
    from django.db import connection

    sent = 0

    def count(execute, sql, params, many, context):
        nonlocal sent
        sent += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        result, took = timed(call)
    return result, took, sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=10_000)
    parser.add_argument("--database", default="mqcloud_bench_billing",
                        help="the scratch database's name (created and dropped)")
    args = parser.parse_args(argv)

    from harness import benchmark_database

    with benchmark_database(args.database):
        from billing.models import UsageRecord

        built, took = timed(lambda: build(args.deployments))
        print(f"bench billing: {built.deployments:,} deployments in {built.organizations:,} organizations, "
              f"{built.events:,} events (built in {took:.1f} s); one month = 720 hours")
        rows, meter = timed(meter_month)
        usage_rows = UsageRecord.objects.count()
        print(f"  meter 720 hours ({usage_rows:,} usage rows, {rows:,} written)          {meter:9.2f} s")
        again, remeter = timed(meter_month)
        print(f"  meter the month again (a rerun: {again} rows written)              {remeter:9.2f} s")
        # A month of rows written in a minute: give them (and the fleet) the statistics autovacuum gives rows
        # written over a month (the planner's choices for the steps below depend on them), untimed.
        analyze_usage()
        checked, check = timed(check_month)
        print(f"  check the month against the lifecycle ({checked.changed} rows changed, "
              f"{len(checked.lines or []):,} sums)   {check:9.2f} s")
        prorations, prorate, prorate_queries = counted(prorate_month)
        print(f"  prorate scales ({prorations:,} prorations, {prorate_queries:,} queries)"
              f"{'':<20} {prorate:9.2f} s")
        invoices, invoice_only, invoice_queries = counted(lambda: invoice_accounts(checked))
        print(f"  invoice ({invoices:,} invoices, {invoice_queries:,} queries)"
              f"{'':<28} {invoice_only:9.2f} s")
        invoice = prorate + invoice_only
        samples = [timed(baseline_sql) for _ in range(3)]
        totals, baseline = min(samples, key=lambda sample: sample[1])
        print(f"  baseline: one SQL aggregate over the usage rows (best of 3)       {baseline:9.3f} s")
        invoiced = invoiced_usage()
        worst = max((abs(invoiced.get(org, Decimal(0)) - total) for org, total in totals.items()), default=0)
        print(f"  check: invoiced usage vs the aggregate, worst organization off by {worst:.4f} (line rounding)")
        print("ratios against the baseline (lower is better):")
        for label, value in (("meter a month", meter), ("re-meter a month (no changes)", remeter),
                             ("prorate and invoice a month", invoice), ("meter and invoice a month", meter + invoice),
                             ("month close: check, prorate and invoice", check + invoice)):
            print(f"  {label:<56} {value / baseline:8.1f}x")
        close = check + invoice
        print(f"month close ÷ aggregate: {close / baseline:.2f}x ({close:.2f} s: check {check:.2f} s, prorate "
              f"{prorate:.2f} s, invoice {invoice_only:.2f} s; aggregate {baseline:.3f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
