"""The API benchmark on a few rows, so it keeps working (it is not run by the suite otherwise). It runs in the
suite's own database (creating one, as the script does, takes longer than everything else)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
from django.core import signals
from django.db import close_old_connections

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import run as api_bench  # noqa: E402 (bench/ is not a package)

pytestmark = pytest.mark.django_db


def test_api_bench_prints_both_ratios(settings, capsys):
    # Restored afterwards: the bench puts its bare views in front of the URLconf and turns rate limits on.
    settings.ROOT_URLCONF = settings.ROOT_URLCONF
    settings.API_RATE_LIMITS = settings.API_RATE_LIMITS
    # As Django's test client does: the test's transaction must outlive each request.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        api_bench.measure(argparse.Namespace(rounds=5, projects=60, deployments=60, audit_events=60))
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    out = capsys.readouterr().out
    assert "bare JsonResponse" in out  # the same 50 rows were checked to come from both
    for name in ("projects", "deployments"):
        assert f"GET /api/v1/{name}?limit=50" in out
    assert "requests per second of the API / of the bare view" in out
    assert "POST /projects replayed by Idempotency-Key" in out
