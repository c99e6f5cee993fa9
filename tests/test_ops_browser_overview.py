"""Issue 14, item 16, in a real browser: the ops fleet overview, a task that failed on a real Celery worker
retried from it, and the page closed to customers."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pyotp
import pytest
from celery import shared_task

from tests.browser import BROWSER_MARKS, screenshot
from tests.support import running_worker, wait_for

pytestmark = [*BROWSER_MARKS, pytest.mark.integration]

#: Set once the cause of the failure is fixed; the worker runs in this process, so it sees it.
FIXED = threading.Event()
DONE: list[str] = []


@shared_task(name="tests.ops_browser.sync_item")
def sync_item(item_id: str) -> str:
    if not FIXED.is_set():
        raise ConnectionError(f"upstream refused {item_id}")
    DONE.append(item_id)
    return "synced"


def ops_log_in(page, email: str, password: str) -> None:
    page.goto("/ops/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


@pytest.mark.django_db(transaction=True)
def test_the_fleet_overview_and_retrying_a_failed_task(page):
    from django.utils import timezone
    from playwright.sync_api import expect

    from alerts.tests.factories import NotificationFactory
    from billing.tests.factories import InvoiceFactory
    from controlplane.models import TaskFailure
    from controlplane.task_records import task_heartbeat_record
    from deployments.services import catalog_sync
    from deployments.tests.factories import DeploymentFactory
    from projects.models import AuditEvent, User
    from projects.tests.factories import PASSWORD, MembershipFactory

    catalog_sync()  # a transactional test starts from empty tables
    FIXED.clear()
    DONE.clear()
    now = timezone.now()
    for status in ("running", "running", "stopped"):
        DeploymentFactory(status=status)
    DeploymentFactory(name="eu-broken", status="failed", status_reason="Kubernetes refused the change: quota")
    DeploymentFactory(name="eu-slow", status="provisioning", status_changed_at=now - timedelta(hours=1))
    task_heartbeat_record(task_name="alerts.tasks.alerts_evaluate", now=now - timedelta(seconds=12))
    for status in ("delivered", "delivered", "delivered", "failed"):
        NotificationFactory(status=status)
    for status in ("open", "paid", "paid"):
        InvoiceFactory(status=status)
    MembershipFactory(user__email="ada@example.com")
    User.objects.create_user("ops@example.com", "an-operator-passphrase", is_staff=True)

    with running_worker():
        sync_item.delay("item-7")
        failure = wait_for(lambda: TaskFailure.objects.filter(task_name="tests.ops_browser.sync_item").first(),
                           "the worker to record the failure")

        # A customer's account does not open the ops site.
        ops_log_in(page, "ada@example.com", PASSWORD)
        page.goto("/ops/overview/")
        expect(page).to_have_url(re.compile(r"/ops/login/\?next=/ops/overview/"))
        expect(page.get_by_role("heading", name="Fleet overview")).to_have_count(0)

        # The operator has no two-factor login yet: the password leads to setting it up, the site opens after.
        ops_log_in(page, "ops@example.com", "an-operator-passphrase")
        expect(page.get_by_role("heading", name="Set up two-factor login")).to_be_visible()
        page.goto("/ops/")
        expect(page).to_have_url(re.compile(r"/ops/login/"))
        page.go_back()
        secret = page.locator("#totp-secret").inner_text().replace(" ", "")
        page.get_by_role("textbox", name="Code").fill(pyotp.TOTP(secret).now())
        page.get_by_role("button", name="Turn on two-factor login and continue").click()
        expect(page.locator("#recovery-codes li")).to_have_count(10)
        screenshot(page, "ops-two-factor-recovery-codes")
        page.get_by_role("link", name="I have saved them: continue to the ops site").click()
        page.get_by_role("link", name="Fleet overview").click()
        expect(page.get_by_role("heading", name="Fleet overview")).to_be_visible()

        by_status = page.locator("#deployments-by-status")
        expect(by_status.locator("tr[data-status=running] td")).to_have_text("2")
        expect(by_status.locator("tr[data-status=failed] td")).to_have_text("1")
        expect(by_status.locator("tr[data-status=provisioning] td")).to_have_text("1")
        operations = page.locator("#operations tbody tr")
        # Newest first: the failed one changed status just now, the stuck one an hour ago.
        expect(operations).to_have_count(2)
        expect(operations.nth(0)).to_contain_text("failed")
        expect(operations.nth(0)).to_contain_text("Kubernetes refused the change: quota")
        expect(operations.nth(1)).to_contain_text("stuck")
        expect(operations.nth(1)).to_contain_text("provisioning for 1 h 0 min")
        expect(page.locator("#evaluation-lag")).to_contain_text(re.compile(r"\b\d\d s since the last evaluation"))
        expect(page.locator("#evaluation-lag")).not_to_contain_text("late")
        expect(page.locator("#delivery-failure-rate")).to_contain_text("high: 25.0% (1 failed of 4)")
        expect(page.locator("#invoices-by-status tr[data-status=paid] td")).to_have_text("2")

        row = page.locator(f"#task-failure-{failure.pk}")
        expect(row).to_contain_text("tests.ops_browser.sync_item")
        expect(row).to_contain_text("item-7")
        expect(row).to_contain_text("builtins.ConnectionError: upstream refused item-7")
        screenshot(page, "ops-overview")

        FIXED.set()
        row.get_by_role("button", name="Retry").click()
        expect(page.locator(".messagelist")).to_contain_text(
            "Queued tests.ops_browser.sync_item again with the same arguments.")
        expect(page.locator(f"#task-failure-{failure.pk}")).to_contain_text("retried")
        expect(page.locator(f"#task-failure-{failure.pk}")).to_contain_text("by ops@example.com")
        wait_for(lambda: DONE == ["item-7"], "the retried task to run on the worker")
    assert TaskFailure.objects.count() == 1
    assert AuditEvent.objects.filter(action="ops.task_failure.retry", actor_label__contains="ops@example.com").exists()
