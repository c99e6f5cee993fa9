"""LOOPBACK_STANDINS: the production profile on one machine (`make run-production`) may speak plain HTTP and call
loopback receivers, but only while every allowed host is loopback; without it production keeps its defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHOWN = ["SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS",
         "OUTBOUND_HTTP_ALLOW_LOOPBACK", "PEERING_AZURE_SIMULATED", "BROKER_MANAGEMENT_LOOPBACK_ONLY", "VIES_URL"]


def production_settings(**extra: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "controlplane.settings"}
    for line in (ROOT / "deploy" / "build.env").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    env.update(extra)
    code = ("import django, json; django.setup(); from django.conf import settings as s; "
            f"print(json.dumps({{name: getattr(s, name) for name in {SHOWN!r}}}))")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_production_keeps_https_and_refuses_loopback_receivers_without_the_switch():
    result = production_settings(ALLOWED_HOSTS="127.0.0.1", OUTBOUND_HTTP_ALLOW_LOOPBACK="1")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True, "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31536000, "OUTBOUND_HTTP_ALLOW_LOOPBACK": False, "PEERING_AZURE_SIMULATED": False,
        "BROKER_MANAGEMENT_LOOPBACK_ONLY": False,
        "VIES_URL": "https://ec.europa.eu/taxation_customs/vies/rest-api/check-vat-number"}


def test_the_switch_allows_plain_http_and_loopback_stand_ins_on_loopback_hosts_only():
    result = production_settings(LOOPBACK_STANDINS="1", ALLOWED_HOSTS="127.0.0.1,localhost,[::1]",
                                 OUTBOUND_HTTP_ALLOW_LOOPBACK="1")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "SESSION_COOKIE_SECURE": False, "CSRF_COOKIE_SECURE": False, "SECURE_SSL_REDIRECT": False,
        "SECURE_HSTS_SECONDS": 0, "OUTBOUND_HTTP_ALLOW_LOOPBACK": True, "PEERING_AZURE_SIMULATED": True,
        "BROKER_MANAGEMENT_LOOPBACK_ONLY": True, "VIES_URL": ""}

    refused = production_settings(LOOPBACK_STANDINS="1", ALLOWED_HOSTS="127.0.0.1,console.mqcloud.example")
    assert refused.returncode != 0
    assert "LOOPBACK_STANDINS is on but ALLOWED_HOSTS" in refused.stderr
