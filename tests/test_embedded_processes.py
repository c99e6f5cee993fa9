"""The helper processes ``make run`` starts with ``python -m`` start on their own: they run without Django set
up, so a module they import must not pull in a model (that failed ``make run`` once, while every test passed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("module", ["deployments.cloudsim", "k8s.simulator"])
def test_the_process_starts_without_django(module: str) -> None:
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, env=env,  # noqa: S603
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()
