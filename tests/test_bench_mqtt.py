"""The MQTT benchmarks with a handful of connects and rows, so they keep working (the suite does not run them
otherwise)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, env: dict[str, str] | None = None) -> str:
    env = env or {**os.environ, "MQCLOUD_PROFILE": "test"}
    result = subprocess.run(  # noqa: S603 (our own scripts, fixed arguments)
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_connect_bench_runs_against_three_brokers():
    out = run("bench/mqtt_connect.py", "--connects", "5", "--users", "5", "--warmup", "2")
    assert "a. anonymous access (baseline)" in out and "c. b + 100 ACL rules" in out
    assert "b/a connect" in out and "c/a connect" in out


def test_import_bench_runs_on_a_few_rows(bench_env):
    out = run("bench/mqtt_import.py", "--users", "50", "--plain", "5", "--rounds", "1",
              "--database", f"mqcloud_bench_mqtt_import_smoke_{os.getpid()}", env=bench_env)
    assert out.count("users/s") == 6 and "queries" in out and "peak memory" in out and "text/csv streamed" in out
    assert "pre-hashed rows: 50 users" in out and "plain-password rows (PBKDF2 per row): 5 users" in out
