"""deploy/observability: the Prometheus rules are valid (``promtool check rules`` where Debian's prometheus package
provides it) and, like the Grafana dashboard's queries, name only metrics the control plane exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from controlplane import telemetry

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "observability" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "observability" / "grafana-dashboard.json"
#: Read at scrape time by collectors (ops/metrics.py, telemetry.QueueDepthCollector); not in the process registry.
SCRAPE_TIME = {"mqcloud_celery_queue_length", "mqcloud_periodic_task_last_success_age_seconds",
               "mqcloud_task_failures_last_hour", "mqcloud_alert_evaluation_lag_seconds",
               "mqcloud_metering_lag_seconds", "mqcloud_pending_tasks", "mqcloud_pending_task_oldest_age_seconds"}
#: What Prometheus itself adds for every target.
PROMETHEUS_OWN = {"up"}
_SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def exported() -> set[str]:
    names = set(SCRAPE_TIME) | PROMETHEUS_OWN
    for metric in vars(telemetry).values():
        describe = getattr(metric, "describe", None)
        if callable(describe) and getattr(metric, "_name", "").startswith("mqcloud_"):
            for family in describe():
                names.add(family.name)
                names.update(family.name + suffix for suffix in _SUFFIXES)
    return names


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: ``mqcloud_…`` identifiers and ``up``, without label values."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    return {name for name in re.findall(r"\b[a-z_][a-z0-9_]*\b", without_strings)
            if name.startswith("mqcloud_") or name == "up"}


def rule_expressions() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def test_alert_rules_name_only_exported_metrics():
    expressions = rule_expressions()
    assert len(expressions) >= 6
    known = exported()
    for expr in expressions:
        assert metric_names(expr) and metric_names(expr) <= known, expr


def test_alert_rules_pass_promtool():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: prometheus); the metric names are checked above")
    result = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_queries_only_exported_metrics():
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(expressions) >= 10
    known = exported()
    for expr in expressions:
        assert metric_names(expr) and metric_names(expr) <= known, expr
    used = set().union(*(metric_names(expr) for expr in expressions))
    assert {"mqcloud_http_request_duration_seconds_bucket", "mqcloud_celery_queue_length",
            "mqcloud_alert_evaluation_lag_seconds", "mqcloud_metering_lag_seconds"} <= used
