"""The load benchmark on tiny inputs (4 users for 1 s, one gunicorn worker), so it keeps working: seeding, the
image's entrypoint starting gunicorn in the production profile, locust in its own process, the report. It runs
in the suite's own database (committed rows, which gunicorn's processes must see)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import load as load_bench  # noqa: E402 (bench/ is not a package)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]


def test_load_bench_reports_every_phase_without_errors(capsys):
    args = load_bench.parser().parse_args([
        "--users", "4", "--spawn-rate", "40", "--warmup", "0", "--duration", "1", "--think-time", "0.1", "0.3",
        "--tenants", "2", "--projects", "3", "--deployments", "2", "--web-concurrency", "1",
        "--ratio-users", "2", "--ratio-seconds", "1", "--ratio-slices", "2", "--ratio-projects", "60",
        "--ratio-deployments", "5", "--ratio-endpoints", "projects",
    ])
    result = load_bench.measure(args)

    mixed = result["mixed"]["total"]
    assert mixed["requests"] > 0 and mixed["failures"] == 0, mixed["errors"]
    assert all(int(status) < 500 for status in result["server"]["statuses"]), result["server"]
    ratio = result["ratio"]["projects"]
    assert ratio["api"]["requests"] > 0 and ratio["bare"]["requests"] > 0
    assert ratio["api"]["failures"] == ratio["bare"]["failures"] == 0
    out = capsys.readouterr().out
    assert "p50 ms" in out and "p99 ms" in out
    assert "/api/v1/projects?limit=50" in out and "/bare/projects" in out and "API / bare" in out
