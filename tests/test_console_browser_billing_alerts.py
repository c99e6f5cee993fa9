"""The billing and alerts consoles, and a deployment's metrics card, in a real browser (see ``tests/browser.py``).

Nothing leaves the machine: Stripe keys stay unset (card payments offline), VIES is not configured, and the
webhook channel posts to a local receiver.
"""

from __future__ import annotations

import re
from datetime import UTC, timedelta
from decimal import Decimal

import pytest

from tests.browser import BROWSER_MARKS, log_in, screenshot

pytestmark = BROWSER_MARKS


def _owner(email: str, organization: str):
    from projects.tests.factories import MembershipFactory

    return MembershipFactory(user__email=email, organization__name=organization)


@pytest.mark.django_db(transaction=True)
def test_billing_details_budgets_usage_and_an_invoice(page):
    from django.utils import timezone
    from playwright.sync_api import expect

    from alerts.tests.factories import AlertChannelFactory
    from billing.models import InvoiceLine
    from billing.services.usage import usage_meter_range
    from billing.tests.factories import InvoiceFactory, record_event
    from deployments.tests.factories import DeploymentFactory
    from projects.tests.factories import PASSWORD, ProjectFactory

    member = _owner("ada@example.com", "Analytical Engines")
    organization = member.organization
    AlertChannelFactory(organization=organization, name="finance", config={"recipients": ["finance@example.com"]})
    # The month's first hour: running for 20 minutes, stopping, then stopped (billed at the storage rate).
    month_start = timezone.now().astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    deployment = DeploymentFactory(organization=organization, project=ProjectFactory(organization=organization,
                                                                                    name="telemetry"),
                                   name="fleet-eu", created_at=month_start - timedelta(days=1))
    record_event(deployment, "running", month_start - timedelta(days=1))
    record_event(deployment, "stopping", month_start + timedelta(minutes=20))
    record_event(deployment, "stopped", month_start + timedelta(minutes=30))
    assert usage_meter_range(start=month_start, end=month_start + timedelta(hours=1)) == 2
    invoice = InvoiceFactory(organization=organization, number="MQ-GLOBAL-2026-000042", legal_name="Old Name GmbH")
    InvoiceLine.objects.create(invoice=invoice, position=1, description="fleet-eu basic-1k, January 2026",
                               quantity=Decimal("744"), unit="h", unit_price=Decimal("0.0134"),
                               amount=Decimal("10.00"))

    log_in(page, "ada@example.com", PASSWORD)
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Billing").click()
    page.get_by_role("navigation", name="Billing").get_by_role("link", name="Billing details").click()
    expect(page.get_by_role("heading", name="Billing details", exact=True)).to_be_visible()
    expect(page.locator("#payments-offline")).to_have_text(re.compile("Card payments are offline"))
    expect(page.locator("#no-card")).to_have_text("No card on file.")

    form = page.get_by_role("form", name="Edit billing details")
    form.get_by_label("Legal name").fill("Analytical Engines GmbH")
    expect(form.get_by_label("Country")).to_have_value("DE")  # prefilled with the organization's country
    form.get_by_label("Country").select_option(label="Germany (DE)")
    form.get_by_label("VAT number").fill("DE123456789")
    form.get_by_role("button", name="Save").click()
    field = page.locator(".field", has=page.get_by_label("VAT number"))
    expect(field.locator(".error")).to_have_text("This is not a valid VAT number (format or check digit).")
    expect(page.get_by_label("VAT number")).to_have_value("DE123456789")

    page.get_by_label("VAT number").fill("136 695 976")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Billing details saved.")).to_be_visible()
    facts = page.get_by_role("region", name="Billing details", exact=True)
    expect(facts).to_contain_text("Analytical Engines GmbH")
    expect(facts.locator("code")).to_have_text("DE136695976")  # the country prefix added
    expect(page.locator("#vat-check")).to_contain_text("Unchecked offline in this installation")
    expect(page.locator("#vat-status-help")).to_contain_text("checks (EU VIES) are offline in this installation")
    screenshot(page, "billing-details")

    page.get_by_role("navigation", name="Billing").get_by_role("link", name="Usage").click()
    expect(page.get_by_text("No budgets.")).to_be_visible()
    page.get_by_role("link", name="New budget").click()
    page.get_by_label("Monthly amount (USD)").fill("0.05")
    page.get_by_label("finance (Email)").check()
    screenshot(page, "billing-budget-form")
    page.get_by_role("button", name="Create budget").click()
    expect(page.get_by_text("Budget created.")).to_be_visible()
    budgets = page.get_by_role("region", name="Budgets")
    row = budgets.locator("tbody tr", has_text="Whole organization")
    expect(row).to_contain_text("finance")
    expect(row).to_contain_text("$0.05")
    # 20 running minutes of basic-1k plus 30 stopped ones: more than the 5 cents, so the bar is full.
    bar = row.get_by_role("progressbar")
    expect(bar).to_have_attribute("value", "100")
    expect(row).to_have_class(re.compile("budget-over"))

    row.get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Scope")).to_be_disabled()
    page.get_by_label("Monthly amount (USD)").fill("250")
    page.get_by_label("finance (Email)").uncheck()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Budget saved.")).to_be_visible()
    row = budgets.locator("tbody tr", has_text="Whole organization")
    expect(row).to_contain_text("$250.00")
    expect(row).to_contain_text("Owners and billing members (email)")
    expect(row.get_by_role("progressbar")).to_have_attribute("value", "0")

    usage = page.get_by_role("region", name="Usage by deployment")
    expect(usage.locator("tbody tr", has_text="running")).to_contain_text("0.33 h")
    expect(usage.locator("tbody tr", has_text="stopped (storage)")).to_contain_text("0.50 h")
    expect(usage.locator("tr.subtotal-row")).to_contain_text("+ 0.50 h stopped")
    expect(usage).to_contain_text("fleet-eu")
    estimate = page.get_by_role("region", name="This month's estimate")
    expect(estimate.locator(".estimate")).to_have_text(re.compile(r"^\$\d+\.\d{2}$"))
    screenshot(page, "billing-usage")

    row.get_by_role("link", name="Edit").click()
    page.get_by_role("button", name="Delete budget").click()
    expect(page.get_by_text("Budget deleted.")).to_be_visible()
    expect(page.get_by_text("No budgets.")).to_be_visible()

    page.get_by_role("navigation", name="Billing").get_by_role("link", name="Invoices").click()
    page.get_by_role("link", name="MQ-GLOBAL-2026-000042").click()
    expect(page.get_by_role("heading", name=re.compile("Invoice MQ-GLOBAL-2026-000042"))).to_be_visible()
    lines = page.locator("table.invoice-lines")
    expect(lines).to_contain_text("fleet-eu basic-1k, January 2026")
    expect(lines.locator("tr.invoice-total")).to_contain_text("$11.90")
    pdf = page.get_by_role("link", name="Download PDF")
    expect(pdf).to_have_attribute("href", f"/api/v1/invoices/{invoice.id}.pdf")
    # The details as they were when the invoice was issued, not the ones just saved.
    expect(page.locator(".invoice-parties")).to_contain_text("Old Name GmbH")
    download = page.request.get(pdf.get_attribute("href"))  # the browser's session cookie
    assert download.status == 200 and download.body().startswith(b"%PDF")
    screenshot(page, "billing-invoice")


def _samples(deployment, *, start, end, step: timedelta, values) -> None:
    """Scrapes of ``deployment`` from ``start`` to ``end``; ``values(i)`` gives each scrape's metrics."""
    from alerts.models import MetricSample

    rows, at, i = [], start, 0
    while at <= end:
        rows += [MetricSample(organization_id=deployment.organization_id, deployment=deployment, metric=metric,
                              value=value, at=at) for metric, value in values(i).items()]
        at, i = at + step, i + 1
    MetricSample.objects.bulk_create(rows)


@pytest.mark.django_db(transaction=True)
def test_webhook_channel_test_send_rule_editor_incidents_and_delivery_log(page, settings):
    from django.utils import timezone
    from playwright.sync_api import expect

    from alerts.models import AlertRule
    from alerts.tests.factories import AlertFactory
    from alerts.tests.standins import Receiver, verify_standard_webhook
    from deployments.tests.factories import DeploymentFactory
    from projects.tests.factories import PASSWORD, ProjectFactory

    settings.OUTBOUND_HTTP_ALLOW_LOOPBACK = True  # live_server is a thread of this process: it sees this too
    member = _owner("ada@example.com", "Analytical Engines")
    project = ProjectFactory(organization=member.organization, name="telemetry")
    deployment = DeploymentFactory(organization=member.organization, project=project, name="fleet-eu")
    now = timezone.now()
    _samples(deployment, start=now - timedelta(minutes=59), end=now, step=timedelta(minutes=1),
             values=lambda i: {"connections_pct": 60.0 + i / 2})

    answers = [(202, {}, b'{"ok":true}'), (500, {}, b"down for maintenance")]
    with Receiver(lambda request: answers.pop(0)) as receiver:
        log_in(page, "ada@example.com", PASSWORD)
        page.get_by_role("navigation", name="Console").get_by_role("link", name="Alerts").click()
        expect(page.get_by_role("heading", name="No incidents")).to_be_visible()
        screenshot(page, "alerts-incidents-empty")

        tabs = page.get_by_role("navigation", name="Alerts sections")
        tabs.get_by_role("link", name="Channels").click()
        page.get_by_role("link", name="Add channel").first.click()
        page.get_by_label("Name").fill("ops-hook")
        page.get_by_label("Type").select_option("webhook")
        page.get_by_role("button", name="Add channel").click()
        expect(page.locator(".form-error")).to_have_text("url: a http(s) URL is required.")
        page.get_by_label("URL").fill(f"{receiver.url}/hooks/mqcloud")
        screenshot(page, "alerts-channel-form")
        page.get_by_role("button", name="Add channel").click()
        created = page.get_by_text("Channel ops-hook created.")
        expect(created).to_be_visible()
        secret = re.search(r"shown only now: (whsec_\S+)", created.inner_text()).group(1)
        row = page.locator("#channels-table tbody tr", has_text="ops-hook")
        expect(row).to_contain_text(f"{receiver.url}/hooks/mqcloud")
        expect(row).to_contain_text("Never used")

        row.get_by_role("button", name="Send test").click()
        result = row.get_by_role("status")
        expect(result).to_contain_text("Delivered")
        expect(result).to_contain_text("HTTP 202")
        # htmx swapped the result into the row: no navigation, no flash message.
        assert page.url.endswith("/console/alerts/channels")
        expect(page.locator("#flash")).not_to_contain_text("Test to ops-hook")
        screenshot(page, "alerts-channels")
        assert len(receiver.requests) == 1
        request = receiver.requests[0]
        assert request["path"] == "/hooks/mqcloud"
        body = verify_standard_webhook(request, secret)
        assert body["test"] is True and body["channel"]["name"] == "ops-hook"
        last_delivery = row.locator("td").nth(3)  # updated out of band with the result
        expect(last_delivery).to_contain_text("Delivered HTTP 202")
        row.get_by_role("button", name="Send test").click()
        expect(row.get_by_role("status")).to_contain_text("Failed")
        expect(row.get_by_role("status")).to_contain_text("HTTP 500")
        expect(last_delivery).to_contain_text("Failed HTTP 500")
        assert len(receiver.requests) == 2

    tabs.get_by_role("link", name="Rules").click()
    page.get_by_role("link", name="Create rule").first.click()
    page.get_by_label("Name").fill("fleet crowded")
    page.get_by_label("Project").select_option(label="telemetry")
    page.get_by_label("Deployment").select_option(label="fleet-eu (telemetry)")
    page.get_by_label("Metric").select_option("connections_pct")
    page.get_by_label("Operator").select_option(label="greater than")
    page.get_by_label("Threshold").fill("85")
    page.get_by_label("Severity").select_option("critical")
    page.get_by_label("ops-hook (Webhook)").check()
    screenshot(page, "alerts-rule-form")
    page.get_by_role("button", name="Create rule").click()
    expect(page.get_by_text("Rule fleet crowded created.")).to_be_visible()
    row = page.locator("#rules-table tbody tr", has_text="fleet crowded")
    expect(row).to_contain_text("Connections used > 85 % of the spec's limit for 300 s")
    expect(row).to_contain_text("telemetry / fleet-eu")
    expect(row).to_contain_text("ops-hook")

    row.get_by_role("link", name="fleet crowded").click()
    preview = page.locator("#rule-preview")
    expect(preview).to_contain_text("Connections used on fleet-eu, last hour")
    expect(preview.locator(".metric-value")).to_contain_text("the rule fires > 85 % of the spec's limit")
    expect(preview.get_by_role("img", name="Connections used over the last hour").locator("polyline")).to_have_count(1)
    screenshot(page, "alerts-rule-edit")

    AlertFactory(organization=member.organization, rule=AlertRule.objects.get(name="fleet crowded"),
                 deployment=deployment, value=93.5)
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Alerts").click()
    incident = page.locator("#incidents-table tbody tr")
    expect(incident).to_have_count(1)
    expect(incident).to_contain_text("Firing")
    expect(incident).to_contain_text("fleet crowded")
    expect(incident).to_contain_text("Critical")
    expect(incident).to_contain_text("93.5")
    expect(incident.get_by_role("link", name="fleet-eu")).to_be_visible()
    screenshot(page, "alerts-incidents")

    tabs.get_by_role("link", name="Delivery log").click()
    deliveries = page.locator("#deliveries-table tbody tr")
    expect(deliveries).to_have_count(2)
    failed, delivered = deliveries.nth(0), deliveries.nth(1)  # newest first
    expect(delivered).to_contain_text("ops-hook")
    expect(delivered).to_contain_text("Delivered")
    expect(delivered.locator("td").nth(4)).to_have_text("202")
    expect(failed).to_contain_text("Failed")
    expect(failed.locator("td").nth(4)).to_have_text("500")
    expect(failed).to_contain_text("HTTP 500 Internal Server Error")
    expect(failed).not_to_contain_text("down for maintenance")  # the endpoint's body is never shown
    screenshot(page, "alerts-deliveries")


@pytest.mark.django_db(transaction=True)
def test_deployment_metrics_charts_gauge_ranges_and_empty_states(page):
    from django.utils import timezone
    from playwright.sync_api import expect

    from deployments.tests.factories import DeploymentFactory
    from projects.tests.factories import PASSWORD, ProjectFactory

    member = _owner("ada@example.com", "Analytical Engines")
    project = ProjectFactory(organization=member.organization, name="telemetry")
    busy = DeploymentFactory(organization=member.organization, project=project, name="fleet-eu")
    earlier = DeploymentFactory(organization=member.organization, project=project, name="fleet-us")
    quiet = DeploymentFactory(organization=member.organization, project=project, name="fleet-ap")
    now = timezone.now()
    # Three hours of scrapes every two minutes ending at 750 of basic-1k's 1,000 connections.
    _samples(busy, start=now - timedelta(hours=3), end=now, step=timedelta(minutes=2),
             values=lambda i: {"connections": 570.0 + 2 * i, "connections_pct": (570.0 + 2 * i) / 10,
                               "messages_in_rate": 40.0 + i % 7, "messages_out_rate": 80.0 + i % 5})
    # Scrapes from ten hours ago only: nothing in the last hour or six.
    _samples(earlier, start=now - timedelta(hours=10, minutes=30), end=now - timedelta(hours=10),
             step=timedelta(minutes=5), values=lambda i: {"connections": 100.0, "connections_pct": 10.0,
                                                           "messages_in_rate": 1.0, "messages_out_rate": 1.0})

    log_in(page, "ada@example.com", PASSWORD)
    page.goto(f"/console/deployments/{busy.id}")
    card = page.get_by_role("region", name="Metrics")
    gauge = card.get_by_role("meter")
    expect(gauge).to_have_attribute("aria-valuenow", "75")
    expect(gauge.locator("text")).to_have_text("75%")
    expect(gauge.locator("path.gauge-value")).to_have_attribute("stroke-dasharray", re.compile(r"^117\.8 157\.1$"))
    expect(card).to_contain_text("of 1000 connections in the spec")
    connections = card.get_by_role("img", name=re.compile("^Connections, last 1h"))
    messages = card.get_by_role("img", name=re.compile("^Messages per second, last 1h"))
    expect(connections.locator("polyline")).to_have_count(1)
    expect(messages.locator("polyline")).to_have_count(2)
    expect(connections.locator("line.chart-ceiling")).to_have_count(1)  # the spec's 1,000 connections
    points_1h = connections.locator("polyline").get_attribute("points")
    assert len(points_1h.split()) >= 29  # one bucket a minute, a scrape every two
    expect(card.get_by_role("link", name="1h")).to_have_attribute("aria-current", "true")
    screenshot(page, "deployment-metrics")

    detail_url = page.url
    card.get_by_role("link", name="6h").click()
    expect(card.get_by_role("link", name="6h")).to_have_attribute("aria-current", "true")
    connections = card.get_by_role("img", name=re.compile("^Connections, last 6h"))
    expect(connections.locator("polyline")).to_have_count(1)
    assert connections.locator("polyline").get_attribute("points") != points_1h
    card.get_by_role("link", name="24h").click()
    expect(card.get_by_role("img", name=re.compile("^Messages per second, last 24h"))).to_be_visible()
    assert page.url == detail_url  # swapped in place by htmx, the page itself stayed

    page.goto(f"/console/deployments/{earlier.id}")
    card = page.get_by_role("region", name="Metrics")
    expect(card.get_by_text("No samples in this range.")).to_have_count(2)
    expect(card.get_by_role("meter")).to_have_attribute("aria-valuenow", "10")
    card.get_by_role("link", name="24h").click()
    expect(card.get_by_role("img", name=re.compile("^Connections, last 24h")).locator("polyline")).to_have_count(1)
    expect(card.get_by_text("No samples in this range.")).to_have_count(0)

    page.goto(f"/console/deployments/{quiet.id}")
    card = page.get_by_role("region", name="Metrics")
    expect(card).to_contain_text("No samples yet — metrics arrive every 30 s once the deployment is running.")
    expect(card.locator("svg")).to_have_count(0)
    screenshot(page, "deployment-metrics-empty")
