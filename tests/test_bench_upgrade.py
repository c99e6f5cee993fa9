"""The upgrade benchmark with fast nodes, so it keeps working (the suite does not run it otherwise)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_upgrade_bench_keeps_two_of_three_nodes_ready(bench_env):
    env = {**bench_env, "BENCH_READY_DELAY": "0.1"}
    result = subprocess.run(  # noqa: S603 (our own script, fixed arguments)
        [sys.executable, "bench/upgrade.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
        check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"three nodes +succeeded .* fewest nodes ready at any moment: [23] of 3 \(promise >= 2: kept\)",
                     out), out
    assert re.search(r"single node +succeeded .* 1 of 1 \(promise >= 1: kept\)", out) or re.search(
        r"single node +succeeded .* [12] of 1", out), out
    assert re.search(r"node 1 never ready +failed", out), out
