"""Smoke test of bench/billing.py on 20 deployments, so the benchmark cannot rot (it is not run by `make test`)."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import time_machine

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def bench():
    path = Path(__file__).resolve().parent.parent / "bench" / "billing.py"
    spec = importlib.util.spec_from_file_location("bench_billing", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_billing"] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("bench_billing", None)


def test_billing_bench_functions_on_20_deployments(bench):
    from billing.models import AnnualCharge, UsageRecord

    built = bench.build(20)
    assert (built.deployments, built.organizations) == (20, 2)
    with time_machine.travel(datetime(2026, 5, 1, 1, tzinfo=UTC), tick=False):
        written = bench.meter_month()
        assert written == UsageRecord.objects.count() > 0
        assert bench.meter_month() == 0  # the production path is idempotent
        assert UsageRecord.objects.filter(rate="stopped").exists()
        checked = bench.check_month()
        assert checked.changed == 0  # the rows agree with the lifecycle: nothing metered again
        assert bench.invoice_month(checked) == 2  # from the check's sums, as the month close invoices
    assert AnnualCharge.objects.filter(kind="proration").count() == 1
    totals, invoiced = bench.baseline_sql(), bench.invoiced_usage()
    assert set(totals) == set(invoiced)
    for organization, total in totals.items():
        lines = UsageRecord.objects.filter(organization_id=organization).values(
            "deployment_id", "spec_id", "rate").distinct().count()
        # Invoices round each line half-up; the aggregate does not.
        assert abs(invoiced[organization] - total) <= Decimal("0.005") * lines
