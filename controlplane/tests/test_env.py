"""Settings from the environment or from mounted files (``NAME_FILE``), and the production profile's deploy checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from controlplane.env import env_bool, env_int, env_list, env_str

ROOT = Path(__file__).resolve().parents[2]


def test_a_setting_is_read_from_the_file_its_file_variable_names(tmp_path, monkeypatch):
    secret = tmp_path / "secret_key"
    secret.write_text("s3cret value with spaces\n")
    monkeypatch.delenv("MQ_TEST_SECRET", raising=False)
    monkeypatch.setenv("MQ_TEST_SECRET_FILE", str(secret))
    assert env_str("MQ_TEST_SECRET", required=True) == "s3cret value with spaces"

    (tmp_path / "keys").write_text("k1,k2")
    monkeypatch.setenv("MQ_TEST_KEYS_FILE", str(tmp_path / "keys"))
    assert env_list("MQ_TEST_KEYS", []) == ["k1", "k2"]
    (tmp_path / "n").write_text("42\n")
    monkeypatch.setenv("MQ_TEST_N_FILE", str(tmp_path / "n"))
    assert env_int("MQ_TEST_N", 1) == 42
    (tmp_path / "b").write_text("true")
    monkeypatch.setenv("MQ_TEST_B_FILE", str(tmp_path / "b"))
    assert env_bool("MQ_TEST_B", False) is True


def test_both_the_variable_and_its_file_or_an_unreadable_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("MQ_TEST_SECRET", "inline")
    monkeypatch.setenv("MQ_TEST_SECRET_FILE", str(tmp_path / "secret"))
    with pytest.raises(ImproperlyConfigured, match="either MQ_TEST_SECRET or MQ_TEST_SECRET_FILE"):
        env_str("MQ_TEST_SECRET")
    monkeypatch.delenv("MQ_TEST_SECRET")
    with pytest.raises(ImproperlyConfigured, match="cannot be read"):
        env_str("MQ_TEST_SECRET")


def test_the_production_profile_passes_djangos_deploy_checks_with_secrets_from_mounted_files(tmp_path):
    """``manage.py check --deploy`` with no warning at all, every secret read from a file, none in the
    environment."""
    secrets = {
        "SECRET_KEY": "x" * 20 + os.urandom(24).hex(),
        "FIELD_ENCRYPTION_KEYS": f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}",
        "PEERING_AZURE_CLIENT_SECRET": "azure-secret",
        "DATABASE_URL": os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mqcloud"),
    }
    environment = {key: value for key, value in os.environ.items() if key not in secrets}
    for name, value in secrets.items():
        (tmp_path / name).write_text(value + "\n")
        environment[f"{name}_FILE"] = str(tmp_path / name)
    environment.update({
        "MQCLOUD_PROFILE": "production",
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"),
        "ALLOWED_HOSTS": "cloud.example.test",
        "PEERING_AZURE_TENANT_ID": "tenant",
        "PEERING_AZURE_CLIENT_ID": "client",
    })
    environment.pop("DEBUG", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "System check identified no issues" in result.stdout
