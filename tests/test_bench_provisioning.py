"""The provisioning benchmark on a few deployments, so it keeps working (the suite does not run it otherwise)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent


def _bench(bench_env: dict[str, str], *args: str, **env: str) -> str:
    # Scratch databases named after the suite's own, so two checkouts testing at once never drop each other's.
    prefix = urlparse(os.environ.get("DATABASE_URL", "")).path.lstrip("/") or "mqcloud"
    result = subprocess.run(  # noqa: S603 (our own script, fixed arguments)
        [sys.executable, "bench/provisioning.py", "--database", f"{prefix}_bench_provisioning",
         "--scaling-database", f"{prefix}_bench_scaling", *args],
        cwd=ROOT, env={**bench_env, **env}, capture_output=True, text=True,
        timeout=240, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_provisioning_bench_runs_on_a_few_deployments(bench_env):
    out = _bench(bench_env, BENCH_DEPLOYMENTS="3", BENCH_READY_DELAY="0.05", BENCH_MAX_ROUNDS="3")
    assert "Kubernetes API calls per deployment" in out and "reconcile per deployment" in out
    assert "cluster-wide calls of the watch cache" in out
    assert re.search(r"drift pass over 3 unchanged deployments: 8 API calls \(2.6667 per deployment\), 0 writes, "
                     r"0 drifted", out)
    assert "1 write(s), 1 deployment repaired" in out and "three nodes" in out


def test_drift_only_bench_seeds_a_settled_fleet_and_measures_only_the_pass(bench_env):
    out = _bench(bench_env, "--drift-only", "4")
    # The seeding applies each deployment's objects once; the first pass over them then has nothing to do (the
    # bench exits non-zero otherwise).
    seeded = re.search(r"4 running deployments of pro-1k seeded in .* (\d+) API calls, [\d.]+ per deployment, "
                       r"minimum (\d+)\)", out)
    assert seeded and int(seeded[1]) == 4 * int(seeded[2]), out
    assert re.search(r"drift pass over 4 unchanged deployments: 8 API calls \(2.0000 per deployment\), 0 writes, "
                     r"0 drifted", out), out
    assert "1 write(s), 1 deployment repaired" in out
    assert "Kubernetes API calls per deployment" not in out and "three nodes" not in out  # the converge bench's
