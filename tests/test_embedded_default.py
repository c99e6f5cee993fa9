"""`make run`'s promise: the embedded default (SQLite, no outside servers) serves every page and runs the
beat jobs. The rest of the suite runs on PostgreSQL and cannot see a PostgreSQL-only query."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The test profile's settings, not handed down to the embedded default's processes.
NOT_INHERITED = frozenset({"DATABASE_URL", "REDIS_URL", "MQCLOUD_PROFILE", "DJANGO_SETTINGS_MODULE"})


def _embedded_env(var_dir: Path, *, drop: frozenset[str] = frozenset(), **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in NOT_INHERITED | drop}
    env.update(MQCLOUD_PROFILE="embedded", MQCLOUD_VAR_DIR=str(var_dir), **extra)
    return env


@dataclass
class Script:
    """One of the scripts beside this file, running in a child process on a var dir of its own."""

    process: subprocess.Popen
    output: Path

    def result(self, timeout: float) -> tuple[int, str]:
        """Its exit code and what it printed (stdout and stderr), once it has finished."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        return code, self.output.read_text(errors="replace")


@pytest.fixture(scope="module")
def scripts(tmp_path_factory) -> Iterator[dict[str, Script]]:
    """The two long scripts, started together with the module: they share nothing (each has its own var dir
    and SQLite file, its web server its own port) and each keeps about one core busy, so on CI's two cores
    they run side by side, and the other tests here meanwhile, instead of one after the other."""
    started: dict[str, Script] = {}
    for name in ("embedded_smoke", "embedded_concurrency"):
        var_dir = tmp_path_factory.mktemp(name)
        output = var_dir / "output.log"
        with output.open("w") as log:
            process = subprocess.Popen([sys.executable, str(HERE / f"{name}.py")], env=_embedded_env(var_dir),
                                       stdout=log, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
        started[name] = Script(process=process, output=output)
    yield started
    for script in started.values():  # a test that failed early, or one deselected (-k)
        if script.process.poll() is None:
            script.process.kill()
            script.process.wait()


@pytest.mark.timeout(300)
def test_console_pages_api_lists_and_beat_jobs_work_on_the_embedded_default(scripts):
    # tests/embedded_smoke.py
    code, output = scripts["embedded_smoke"].result(timeout=280)
    assert code == 0, output[-6000:]


def _embedded(var_dir: Path, code: str, **extra: str) -> subprocess.Popen:
    """Starts ``code`` after Django's setup on the embedded default; ``_printed`` waits for what it prints."""
    env = _embedded_env(var_dir, drop=frozenset({"SECRET_KEY", "DEBUG", "FIELD_ENCRYPTION_KEYS"}),
                        DJANGO_SETTINGS_MODULE="controlplane.settings", **extra)
    prelude = "import django; django.setup(); from django.conf import settings\n"
    return subprocess.Popen([sys.executable, "-c", prelude + code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)


def _printed(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=60)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, process.args, out, err)
    return out


def test_make_run_has_debug_off_and_a_secret_key_of_its_own_kept_across_restarts(tmp_path):
    # Two installations, each starting for the first time, at once (they share nothing).
    first_start = _embedded(tmp_path / "a", "from controlplane.crypto import encrypt_text\n"
                            "print(settings.DEBUG, settings.SECRET_KEY, encrypt_text('broker secret'))")
    other_start = _embedded(tmp_path / "b", "print(settings.SECRET_KEY)")
    first = _printed(first_start).split()
    assert first[0] == "False"
    key_file = tmp_path / "a" / "secret_key"
    assert key_file.read_text().strip() == first[1] and len(first[1]) >= 50
    assert key_file.stat().st_mode & 0o777 == 0o600
    # A restart reads the same key, so what was encrypted before still decrypts.
    again = _printed(_embedded(tmp_path / "a", f"from controlplane.crypto import decrypt_text\n"
                               f"print(settings.SECRET_KEY, decrypt_text({first[2]!r}))")).split()
    assert again == [first[1], "broker", "secret"]
    # Another installation gets another key; nothing in the source is a key.
    other = _printed(other_start).strip()
    assert other != first[1]
    assert "dev-insecure" not in (ROOT / "controlplane" / "settings.py").read_text()


def test_make_run_refuses_debug_pages_on_a_network_address(tmp_path):
    env = _embedded_env(tmp_path, DEBUG="1", HOST="0.0.0.0")
    result = subprocess.run([sys.executable, str(ROOT / "bin" / "run_embedded.py")], env=env,
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 1 and "DEBUG is on" in result.stderr, result.stderr
    assert not (tmp_path / "mqcloud.sqlite3").exists()  # refused before anything started


@pytest.mark.timeout(600)
def test_twenty_parallel_writes_on_the_embedded_default_answer_2xx_409_or_503_never_500(scripts):
    # tests/embedded_concurrency.py
    code, output = scripts["embedded_concurrency"].result(timeout=580)
    assert code == 0, output[-9000:]
