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


def _embedded(var_dir: Path, code: str, **extra: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items()
           if key not in {"DATABASE_URL", "REDIS_URL", "MQCLOUD_PROFILE", "DJANGO_SETTINGS_MODULE", "SECRET_KEY",
                          "DEBUG", "FIELD_ENCRYPTION_KEYS"}}
    env.update(MQCLOUD_PROFILE="embedded", MQCLOUD_VAR_DIR=str(var_dir), DJANGO_SETTINGS_MODULE="controlplane.settings",
               **extra)
    prelude = "import django; django.setup(); from django.conf import settings\n"
    return subprocess.run([sys.executable, "-c", prelude + code], env=env, capture_output=True, text=True,
                          timeout=60, cwd=SCRIPT.parent.parent, check=True)


def test_make_run_has_debug_off_and_a_secret_key_of_its_own_kept_across_restarts(tmp_path):
    first = _embedded(tmp_path / "a", "from controlplane.crypto import encrypt_text\n"
                      "print(settings.DEBUG, settings.SECRET_KEY, encrypt_text('broker secret'))").stdout.split()
    assert first[0] == "False"
    key_file = tmp_path / "a" / "secret_key"
    assert key_file.read_text().strip() == first[1] and len(first[1]) >= 50
    assert key_file.stat().st_mode & 0o777 == 0o600
    # A restart reads the same key, so what was encrypted before still decrypts.
    again = _embedded(tmp_path / "a", f"from controlplane.crypto import decrypt_text\n"
                      f"print(settings.SECRET_KEY, decrypt_text({first[2]!r}))").stdout.split()
    assert again == [first[1], "broker", "secret"]
    # Another installation gets another key; nothing in the source is a key.
    other = _embedded(tmp_path / "b", "print(settings.SECRET_KEY)").stdout.strip()
    assert other != first[1]
    assert "dev-insecure" not in (SCRIPT.parent.parent / "controlplane" / "settings.py").read_text()


def test_make_run_refuses_debug_pages_on_a_network_address(tmp_path):
    env = {key: value for key, value in os.environ.items()
           if key not in {"DATABASE_URL", "REDIS_URL", "MQCLOUD_PROFILE", "DJANGO_SETTINGS_MODULE"}}
    env.update(MQCLOUD_PROFILE="embedded", MQCLOUD_VAR_DIR=str(tmp_path), DEBUG="1", HOST="0.0.0.0")
    result = subprocess.run([sys.executable, str(SCRIPT.parent.parent / "bin" / "run_embedded.py")], env=env,
                            capture_output=True, text=True, timeout=60, cwd=SCRIPT.parent.parent)
    assert result.returncode == 1 and "DEBUG is on" in result.stderr, result.stderr
    assert not (tmp_path / "mqcloud.sqlite3").exists()  # refused before anything started


@pytest.mark.timeout(600)
def test_twenty_parallel_writes_on_the_embedded_default_answer_2xx_409_or_503_never_500(tmp_path):
    env = {key: value for key, value in os.environ.items()
           if key not in {"DATABASE_URL", "REDIS_URL", "MQCLOUD_PROFILE", "DJANGO_SETTINGS_MODULE"}}
    env.update(MQCLOUD_PROFILE="embedded", MQCLOUD_VAR_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, str(SCRIPT.parent / "embedded_concurrency.py")], env=env,
                            capture_output=True, text=True, timeout=580, cwd=SCRIPT.parent.parent)
    assert result.returncode == 0, f"{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
