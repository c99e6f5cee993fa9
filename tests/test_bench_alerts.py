"""The alerts benchmark on a tiny fleet, so it keeps working (it is not run by the suite otherwise)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("transport", ["http", "https"])
def test_alerts_bench_runs_on_a_small_fleet(transport, bench_env):
    result = subprocess.run(  # noqa: S603 (our own script, fixed arguments)
        [sys.executable, "bench/alerts.py", "--deployments", "20", "--database",
         f"mqcloud_bench_alerts_smoke_{os.getpid()}", "--slow-s", "0.2", "--slow-count", "2",
         *(["--https"] if transport == "https" else [])],
        cwd=ROOT, env=bench_env, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "ms per deployment" in out and "'fired': 2" in out  # one deployment in ten is over the threshold
    assert "deliveries/s" in out and "(2 delivered)" in out and "x the bare client" in out
    assert "slow-receiver ratio" in out
    assert f"local receiver ({transport})" in out
