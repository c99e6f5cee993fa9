"""`make run`'s promise: the embedded default (SQLite, no outside servers) serves every page and runs the
beat jobs. The rest of the suite runs on PostgreSQL and cannot see a PostgreSQL-only query."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "embedded_smoke.py"


@pytest.mark.timeout(300)
def test_console_pages_api_lists_and_beat_jobs_work_on_the_embedded_default(tmp_path):
    env = {key: value for key, value in os.environ.items()
           if key not in {"DATABASE_URL", "REDIS_URL", "MQCLOUD_PROFILE", "DJANGO_SETTINGS_MODULE"}}
    env.update(MQCLOUD_PROFILE="embedded", MQCLOUD_VAR_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=280,
                            cwd=SCRIPT.parent.parent)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr[-3000:]}"
