"""The provisioning benchmark on three deployments, so it keeps working (the suite does not run it otherwise)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_provisioning_bench_runs_on_a_few_deployments():
    env = {**os.environ, "MQCLOUD_PROFILE": "test", "BENCH_DEPLOYMENTS": "3", "BENCH_READY_DELAY": "0.05"}
    result = subprocess.run(  # noqa: S603 (our own script, fixed arguments)
        [sys.executable, "bench/provisioning.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
        check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Kubernetes API calls per deployment" in out and "reconcile per deployment" in out
    assert "cluster-wide calls of the watch cache" in out
    assert re.search(r"drift pass over 3 unchanged deployments: 8 API calls \(2.667 per deployment\), 0 writes", out)
    assert "1 write(s), 1 deployment repaired" in out and "three nodes" in out
