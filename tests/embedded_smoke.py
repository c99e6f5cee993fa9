"""Run by tests/test_embedded_default.py in a child process: the embedded default (`make run`) on SQLite.

The suite runs on PostgreSQL, so a query only PostgreSQL understands (``DISTINCT ON``, array functions, raw
SQL) would pass every other test and still break `make run`. This script sets the embedded profile up the
way ``bin/run_embedded.py`` does, then opens every console page without URL arguments, the detail pages of
what it creates, the main API lists, and runs the beat jobs' services once. It prints one line per failure
and exits 1 if there was any.
"""

from __future__ import annotations

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
    from django.utils import timezone

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
        if name not in {"logout", "login", "signup"}:
            get(reverse(f"console:{name}"))
    for path in ("/api/v1/organization", "/api/v1/projects", "/api/v1/deployments", "/api/v1/billing/account",
                 "/api/v1/billing/usage", "/api/v1/invoices", "/api/v1/budgets", "/api/v1/alert-channels",
                 "/api/v1/alert-rules", "/api/v1/alerts", "/api/v1/notifications", "/api/v1/audit-events",
                 "/api/v1/schema"):
        get(path)
    if channel:
        get(reverse("console:alert-channel-edit", args=[channel["id"]]))
        sent = post(f"/api/v1/alert-channels/{channel['id']}/test", {}, 200)
        if sent and not sent.get("delivered"):
            failures.append(f"test send to the outbox: {sent}")
        # A queued delivery goes through the worker's path (claim, send, record) on SQLite too.
        from alerts.models import Notification
        from alerts.services import notification_attempt

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

    # The beat jobs' services, as Celery would run them on the filesystem transport.
    from alerts import evaluator
    from billing import services as billing

    try:
        now = timezone.now()
        billing.subscriptions_roll_over()
        billing.subscriptions_prorate_scales()
        billing.usage_meter_recent(hours=3)
        billing.usage_meter_recent(hours=3)  # a rerun is a no-op, on SQLite too
        billing.budgets_evaluate(now=now)
        evaluator.alerts_evaluate(now=now)
        last_month = (now.date().replace(day=1) - timedelta(days=1)).replace(day=1)
        billing.invoices_generate_for_month(period_start=last_month)
    except Exception as exc:  # noqa: BLE001 - reported, not hidden: the test fails with it
        failures.append(f"beat services: {type(exc).__name__}: {exc}")

    for failure in failures:
        print(failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
