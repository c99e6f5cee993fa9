"""The image (Dockerfile) lints clean with hadolint and keeps its promises; its entrypoint dispatches each
command (dry run); gunicorn's access log is JSON; a worker's liveness follows its heartbeat file."""

from __future__ import annotations

import json
import logging
import os
import runpy
import subprocess
import sys
import time
from datetime import timedelta
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from types import SimpleNamespace

import pytest

from controlplane.queues import QUEUES
from tests.deploy_support import ROOT, deploy_tools

ENTRYPOINT = ROOT / "bin" / "container-entrypoint"


def test_dockerfile_lints_clean_and_builds_a_slim_non_root_image():
    lint = subprocess.run([str(deploy_tools() / "hadolint"), "--failure-threshold", "info", str(ROOT / "Dockerfile")],
                          capture_output=True, text=True, timeout=60)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    text = (ROOT / "Dockerfile").read_text()
    final_stage = text[text.rindex("\nFROM "):]
    assert "FROM python:3.11-slim" in text and final_stage.startswith("\nFROM base AS runtime")
    assert "USER 10001" in final_stage and "HEALTHCHECK" in final_stage
    assert "PYTHONDONTWRITEBYTECODE=1" in final_stage and "COPY --from=build" in final_stage
    # Nothing in the running image installs or compiles: no package manager, no build context copied in.
    assert "pip install" not in final_stage and "apt-get" not in final_stage and "\nCOPY . " not in final_stage
    assert "collectstatic" in text


def run_entrypoint(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ENTRYPOINT), "--dry-run", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "WORKER_CONCURRENCY": "3"})


def test_entrypoint_dispatches_every_command():
    commands = {name: json.loads(run_entrypoint(*name.split()).stdout) for name in (
        "web", "worker provisioning", "worker billing alerts", "worker", "beat", "migrate", "sync-catalog",
        "wait-for-migrations")}
    assert commands["web"][:3] == ["gunicorn", "--config", str(ROOT / "deploy" / "gunicorn.conf.py")]
    assert commands["web"][-1] == "controlplane.wsgi"
    provisioning = commands["worker provisioning"]
    assert provisioning[:4] == ["celery", "-A", "controlplane", "worker"]
    assert provisioning[provisioning.index("--queues") + 1] == "provisioning"
    assert provisioning[provisioning.index("--concurrency") + 1] == "3"
    assert commands["worker billing alerts"][provisioning.index("--queues") + 1] == "billing,alerts"
    assert commands["worker"][provisioning.index("--queues") + 1] == ",".join(QUEUES)
    assert commands["beat"][:4] == ["celery", "-A", "controlplane", "beat"]
    assert commands["migrate"][-2:] == ["migrate", "--noinput"]
    assert commands["sync-catalog"][-1] == "sync_catalog"
    assert commands["wait-for-migrations"][-2:] == ["_wait-for-migrations", "1800"]
    # A misspelt queue would make a healthy-looking worker that consumes nothing.
    refused = run_entrypoint("worker", "provisionning")
    assert refused.returncode != 0 and "unknown queue" in refused.stderr
    assert run_entrypoint("serve").returncode != 0


def test_worker_liveness_follows_its_heartbeat_file(tmp_path):
    loader = SourceFileLoader("container_entrypoint", str(ENTRYPOINT))
    entrypoint = module_from_spec(spec_from_loader(loader.name, loader))
    loader.exec_module(entrypoint)
    heartbeat = tmp_path / "heartbeat"
    assert not entrypoint.heartbeat_fresh(heartbeat, time.time())
    heartbeat.touch()
    assert entrypoint.heartbeat_fresh(heartbeat, time.time())
    assert not entrypoint.heartbeat_fresh(heartbeat, time.time() + entrypoint.HEARTBEAT_MAX_AGE_S + 1)


@pytest.fixture
def gunicorn_config(monkeypatch):
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    return runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))


def test_gunicorn_workers_follow_the_cgroup_cpu_limit(gunicorn_config, tmp_path):
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("150000 100000\n")  # a limit of 1.5 CPUs on a node of many more
    assert gunicorn_config["available_cpus"](cpu_max) == 1.5
    assert gunicorn_config["default_workers"](1.5, 8) == 4
    cpu_max.write_text("max 100000\n")
    assert gunicorn_config["available_cpus"](cpu_max) == len(os.sched_getaffinity(0))
    assert gunicorn_config["default_workers"](64, 8) == 8
    assert gunicorn_config["graceful_timeout"] < 45  # the pods' terminationGracePeriodSeconds


def test_gunicorn_access_log_is_one_json_object_per_request(gunicorn_config, caplog):
    from gunicorn.config import Config

    cfg = Config()
    for name in ("accesslog", "logger_class"):
        cfg.set(name, gunicorn_config[name])
    logger = gunicorn_config["JsonAccessLogger"](cfg)
    logger.access_log.propagate = True  # into caplog
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": '/console/?q="x y"', "PATH_INFO": '/console/"x y"',
               "QUERY_STRING": 'q="x y"', "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "10.0.0.9",
               "HTTP_USER_AGENT": 'agent "quoted"', "HTTP_X_REQUEST_ID": "req-1"}
    response = SimpleNamespace(status="200 OK", sent=1234, headers=[])
    with caplog.at_level(logging.INFO, logger="gunicorn.access"):
        logger.access(response, SimpleNamespace(headers=[]), environ, timedelta(milliseconds=12.5))
    record = json.loads(caplog.records[-1].getMessage())
    assert record["path"] == '/console/"x y"' and record["user_agent"] == 'agent "quoted"'
    assert record["status"] == 200 and record["bytes"] == 1234 and record["duration_ms"] == 12.5
    assert record["request_id"] == "req-1"
