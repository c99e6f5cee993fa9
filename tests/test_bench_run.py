"""The API benchmark on a few rows, so it keeps working (it is not run by the suite otherwise)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_api_bench_prints_both_ratios():
    env = {**os.environ, "MQCLOUD_PROFILE": "test"}
    result = subprocess.run(  # noqa: S603 (our own script, fixed arguments)
        [sys.executable, "bench/run.py", "--rounds", "5", "--projects", "60", "--deployments", "60",
         "--database", f"mqcloud_bench_api_smoke_{os.getpid()}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "bare JsonResponse" in out  # the same 50 rows were checked to come from both
    for name in ("projects", "deployments"):
        assert f"GET /api/v1/{name}?limit=50" in out
    assert "requests per second of the API / of the bare view" in out
    assert "POST /projects replayed by Idempotency-Key" in out
