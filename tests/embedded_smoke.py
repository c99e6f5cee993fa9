"""Run by tests/test_embedded_default.py in a child process: the embedded default (`make run`) on SQLite.

The suite runs on PostgreSQL, so a query only PostgreSQL understands (``DISTINCT ON``, array functions, raw
SQL) would pass every other test and still break `make run`. This script sets the embedded profile up the
way ``bin/run_embedded.py`` does, then opens every console page without URL arguments, the detail pages of
what it creates, the main API lists, and runs every job of the beat schedule through Celery's tracer over real
data (running deployments on a simulated cluster, metric samples, rules that fire, a failed peering, a budget,
hours to meter, last month to invoice). It prints one line per failure (a task exception, an error logged,
an incident that did not fire, nothing metered or invoiced) and exits 1 if there was any.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")


def main() -> int:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.urls import get_resolver, reverse

    assert settings.EMBEDDED and connection.vendor == "sqlite", (settings.PROFILE, connection.vendor)
    for folder in ("celery-queue", "celery-processed"):  # as bin/run_embedded.py makes them
        (settings.VAR_DIR / folder).mkdir(parents=True, exist_ok=True)
    for command in (("migrate", "--noinput", "-v", "0"), ("createcachetable",), ("sync_catalog",), ("seed_demo",)):
        call_command(*command)

    from alerts.models import AlertChannel
    from projects.demo import DEMO_EMAIL, DEMO_PASSWORD

    def channel_row_org(channel_id: str) -> str:
        return AlertChannel.objects.get(pk=channel_id).organization_id

    failures: list[str] = []
    client = Client()
    if not client.login(username=DEMO_EMAIL, password=DEMO_PASSWORD):
        print("the demo login failed")
        return 1

    def get(url: str) -> None:
        response = client.get(url)
        if response.status_code not in (200, 405):  # 405: an action that only takes POST
            failures.append(f"GET {url}: {response.status_code}")

    def post(url: str, body: dict, expected: int) -> dict:
        response = client.post(url, body, content_type="application/json")
        if response.status_code != expected:
            failures.append(f"POST {url}: {response.status_code} {response.content[:300]!r}")
            return {}
        return response.json()

    # Something to show on the pages: a budget, an email channel (mail lands in the outbox), a rule.
    projects = client.get("/api/v1/projects").json()["results"]
    post("/api/v1/budgets", {"amount": "100.00"}, 201)
    channel = post("/api/v1/alert-channels", {"name": "ops", "type": "email",
                                              "config": {"recipients": ["ops@example.com"]}}, 201)
    if projects and channel:
        post("/api/v1/alert-rules", {"name": "busy", "project": projects[0]["id"], "metric": "connections_pct",
                                     "operator": ">", "threshold": "90", "channels": [channel["id"]]}, 201)

    def page_names(patterns) -> list[str]:
        names = []
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                names += page_names(pattern.url_patterns)
            elif pattern.name and not pattern.pattern.converters:
                names.append(pattern.name)
        return names

    console = get_resolver().namespace_dict["console"][1]
    for name in page_names(console.url_patterns):
        # The login's steps; the code step without a password step before it sends back to the login page, and
        # so does the SSO callback without a login started at the IdP.
        if name not in {"logout", "login", "login-two-factor", "signup", "sso-callback"}:
            get(reverse(f"console:{name}"))
    for path in ("/api/v1/organization", "/api/v1/projects", "/api/v1/deployments", "/api/v1/billing/account",
                 "/api/v1/billing/usage", "/api/v1/invoices", "/api/v1/budgets", "/api/v1/alert-channels",
                 "/api/v1/alert-rules", "/api/v1/alerts", "/api/v1/notifications", "/api/v1/audit-events",
                 "/api/v1/schema"):
        get(path)
    # DEBUG is off on `make run`: static files still come from WhiteNoise (runserver serves them only in DEBUG).
    if settings.DEBUG:
        failures.append("DEBUG is on in the embedded profile")
    for path in ("/static/mqcloud/css/console.css", "/static/mqcloud/js/htmx.min.js",
                 "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"):
        response = client.get(path)
        if response.status_code != 200:
            failures.append(f"GET {path}: {response.status_code}")
    if channel:
        get(reverse("console:alert-channel-edit", args=[channel["id"]]))
        sent = post(f"/api/v1/alert-channels/{channel['id']}/test", {}, 200)
        if sent and not sent.get("delivered"):
            failures.append(f"test send to the outbox: {sent}")
        # A queued delivery goes through the worker's path (claim, send, record) on SQLite too.
        from alerts.models import Notification
        from alerts.services.sending import notification_attempt

        queued = Notification.objects.create(organization_id=channel_row_org(channel["id"]), channel_id=channel["id"],
                                             kind="test", payload={"summary": "embedded smoke"})
        notification_attempt(notification_id=queued.id)
        queued.refresh_from_db()
        if queued.status != "delivered":
            failures.append(f"queued delivery: {queued.status} {queued.last_error}")

    # Without Redis the login lockout and the rate limits count in the database: atomically on SQLite too.
    from controlplane import ratelimit
    from tests.support import run_in_parallel

    if settings.RATE_LIMIT_STORE != "database":
        failures.append(f"rate limit store: {settings.RATE_LIMIT_STORE}")
    try:
        counts = run_in_parallel(10, lambda _: ratelimit.hit("smoke:parallel", limit=5, window=60).count)
        if sorted(counts) != list(range(1, 11)):
            failures.append(f"parallel rate limit counts: {sorted(counts)}")
    except Exception as exc:  # noqa: BLE001 - reported, not hidden
        failures.append(f"parallel rate limit: {type(exc).__name__}: {exc}")
    guesses = [Client().post(reverse("console:login"), {"email": "guess@example.com", "password": "wrong"})
               for _ in range(settings.LOGIN_MAX_FAILURES + 1)]
    if "Too many failed logins" not in guesses[-1].content.decode():
        failures.append(f"login lockout on SQLite: {guesses[-1].status_code}")

    # A password reset answers 202 and its mail (sent by the worker on `make run`) lands in the outbox.
    from controlplane.mail import outbox_messages
    from projects.tasks import password_reset_send_email

    post("/api/v1/auth/password/reset", {"email": DEMO_EMAIL}, 202)
    password_reset_send_email.apply(args=[DEMO_EMAIL])
    if not any(m.subject == "Reset your mqcloud password" and DEMO_EMAIL in m.to for m in outbox_messages()):
        failures.append("the password reset mail is not in the outbox")

    failures += beat_jobs_over_real_data(client, projects[0]["id"] if projects else None,
                                         channel["id"] if channel else None)

    for failure in failures:
        print(failure)
    return 1 if failures else 0


class _ErrorLog(logging.Handler):
    """Collects what the jobs log at ERROR or with a traceback: Celery reports a task's exception only there."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info or "raised unexpected" in record.getMessage():
            self.records.append(record)


def beat_jobs_over_real_data(client, project_id: str | None, channel_id: str | None) -> list[str]:
    """Every job of the beat schedule, run as the worker runs it (eagerly, through Celery's task tracer), over
    running deployments on a simulated cluster with metric samples, rules that fire, a failed peering, a
    budget, hours to meter and last month to invoice. Any exception or logged error is a failure."""
    from django.conf import settings
    from django.utils import timezone

    from alerts.evaluator import alerts_evaluate
    from alerts.metrics import metrics_collect
    from alerts.models import Alert
    from billing.models import Invoice, UsageRecord
    from billing.services.usage import usage_meter_range
    from controlplane.celery import app as celery_app
    from deployments.models import Deployment, DeploymentEvent, Spec
    from deployments.tests.factories import DeploymentFactory, PeeringFactory
    from projects.models import Project
    from tests.support import eager_tasks, simulated_cluster

    failures: list[str] = []
    if project_id is None or channel_id is None:
        return ["no demo project or alert channel to run the beat jobs over"]
    project = Project.objects.get(pk=project_id)
    org = project.organization
    for metric, threshold in (("connections_pct", "80"), ("peering_failed", "0")):
        response = client.post("/api/v1/alert-rules", {
            "name": f"smoke {metric}", "project": project_id, "metric": metric, "operator": ">",
            "threshold": threshold, "duration_s": 60, "channels": [channel_id]}, content_type="application/json")
        if response.status_code != 201:
            failures.append(f"rule {metric}: {response.status_code} {response.content[:300]!r}")
    now = timezone.now()
    last_month = (now.replace(day=1, hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)).replace(day=1)
    basic = DeploymentFactory(organization=org, project=project, name="smoke-basic")
    pro = DeploymentFactory(organization=org, project=project, name="smoke-pro", spec=Spec.objects.get(id="pro-1k"))
    Deployment.objects.filter(pk__in=[basic.pk, pro.pk]).update(created_at=last_month)
    for deployment in (basic, pro):
        DeploymentEvent.objects.create(organization=org, deployment=deployment, from_status="pending",
                                       to_status="running", spec=deployment.spec, created_at=last_month)
    PeeringFactory(organization=org, deployment=pro, status="failed", status_changed_at=now - timedelta(minutes=5))
    # Last month's hours, so the invoice job has usage to bill (the hourly job meters only the recent hours).
    usage_meter_range(start=last_month, end=now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=3))

    errors = _ErrorLog()
    logging.getLogger().addHandler(errors)
    try:
        with simulated_cluster(seed=12) as cluster, eager_tasks():
            run = _beat_job_runner(celery_app, failures)
            run("deployments.tasks.deployments_reconcile")  # repairs: the namespaces and brokers now exist
            cluster.metrics.steer(basic.namespace, {"connections": 900})  # 90 % of basic-1k
            # Samples a minute apart, then a pass that must fire: the rule's condition has held for 60 s.
            for seconds in (90, 30):
                metrics_collect(now=now - timedelta(seconds=seconds))
            alerts_evaluate(now=now - timedelta(seconds=30))
            for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
                run(entry["task"], name)
    finally:
        logging.getLogger().removeHandler(errors)
    for record in errors.records:
        failures.append(f"logged by {record.name}: {record.getMessage()[:500]}")
    fired = set(Alert.objects.filter(organization=org).values_list("rule__metric", flat=True))
    if fired != {"connections_pct", "peering_failed"}:
        failures.append(f"incidents fired for {sorted(fired)}, not for connections_pct and peering_failed")
    if not UsageRecord.objects.filter(deployment=basic).exists():
        failures.append("no usage metered")
    if not Invoice.objects.filter(account__organization=org, period_start=last_month.date()).exists():
        failures.append("no invoice for last month")
    return failures


def _beat_job_runner(celery_app, failures: list[str]):
    celery_app.loader.import_default_modules()  # the apps' tasks modules, as a worker imports them
    def run(task_name: str, schedule_name: str = "") -> None:
        try:
            result = celery_app.tasks[task_name].apply(throw=False)
        except Exception as exc:  # noqa: BLE001 - reported, not hidden: the test fails with it
            failures.append(f"beat job {schedule_name or task_name}: {type(exc).__name__}: {exc}")
            return
        if result.failed():
            failures.append(f"beat job {schedule_name or task_name}: {result.traceback}")

    return run


if __name__ == "__main__":
    sys.exit(main())
