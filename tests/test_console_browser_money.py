"""Issue 14, items 1-5, in a real browser (see ``tests/browser.py``): money and disruption are confirmed with a
statement of what happens, and the billing pages add up.

Every amount on these pages comes from the catalog (basic-1k: 0.18 USD an hour, 0.01 stopped, 1,340 a year) and
billing's own code; the organization is German, as is the seller of the global site, so VAT is 19%.
"""

from __future__ import annotations

import re
from datetime import UTC, timedelta
from decimal import Decimal

import pytest

from tests.browser import BROWSER_MARKS, log_in, screenshot

pytestmark = BROWSER_MARKS


def _owner(email: str = "ada@example.com"):
    from projects.tests.factories import MembershipFactory

    return MembershipFactory(user__email=email, organization__name="Analytical Engines")


def _month_with_usage_and_an_annual_term(organization):
    """fleet-eu ran 20 minutes of this month's first hour (0.06) and was stopped 30 (0.005, rounded to 0.01),
    then switched to annual (a 1,340.00 term charged on the next invoice): 1,340.07 before VAT."""
    from django.utils import timezone

    from billing.services.subscriptions import subscription_switch_to_annual
    from billing.services.usage import usage_meter_range
    from billing.tests.factories import record_event
    from deployments.tests.factories import DeploymentFactory
    from projects.tenancy import Principal
    from projects.tests.factories import ProjectFactory

    month_start = timezone.now().astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    deployment = DeploymentFactory(organization=organization, name="fleet-eu",
                                   created_at=month_start - timedelta(days=1),
                                   project=ProjectFactory(organization=organization, name="telemetry"))
    record_event(deployment, "running", month_start - timedelta(days=1))
    record_event(deployment, "stopping", month_start + timedelta(minutes=20))
    record_event(deployment, "stopped", month_start + timedelta(minutes=30))
    usage_meter_range(start=month_start, end=month_start + timedelta(hours=1))
    subscription_switch_to_annual(principal=Principal.for_system(organization), deployment=deployment, renew=False)
    return deployment, month_start


@pytest.mark.django_db(transaction=True)
def test_the_estimate_is_itemised_into_metered_usage_and_annual_charges(page):
    from playwright.sync_api import expect

    from projects.tests.factories import PASSWORD

    member = _owner()
    _month_with_usage_and_an_annual_term(member.organization)

    log_in(page, "ada@example.com", PASSWORD)
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Billing").click()
    estimate = page.get_by_role("region", name="This month's estimate")
    expect(estimate.locator(".estimate")).to_have_text("$1,340.07")
    expect(estimate).to_contain_text(re.compile(r"Metered usage\s*\$0\.07"))
    expect(estimate).to_contain_text(re.compile(r"Annual terms and scale charges\s*\$1,340\.00"))

    usage = page.get_by_role("region", name="Usage by deployment")
    expect(usage.locator("tbody tr", has_text="running")).to_contain_text("$0.18")  # the hourly price
    expect(usage.locator("tbody tr", has_text="stopped (storage)")).to_contain_text("$0.01")
    expect(usage.locator("tfoot")).to_contain_text("$0.07")
    charges = page.get_by_role("region", name="Annual terms and scale charges")
    row = charges.locator("tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(re.compile(r"fleet-eu \(dep_\w+\), annual term \d{4}-\d{2}-\d{2} to"))
    expect(row).to_contain_text("$1,340.00")
    expect(charges.locator("tfoot")).to_contain_text("$1,340.00")
    screenshot(page, "money-usage-itemised")


@pytest.mark.django_db(transaction=True)
def test_the_current_months_invoice_can_be_previewed_as_the_run_will_make_it(page):
    import time_machine
    from playwright.sync_api import expect

    from billing import periods
    from billing.models import BillingAccount, Invoice
    from billing.services.invoicing import invoice_generate
    from projects.tests.factories import PASSWORD

    member = _owner()
    _month_with_usage_and_an_annual_term(member.organization)

    log_in(page, "ada@example.com", PASSWORD)
    page.goto("/console/billing/invoices")
    expect(page.get_by_text("No invoices yet.")).to_be_visible()
    page.get_by_role("link", name="Preview this month's invoice").click()
    expect(page.get_by_role("heading", name="Invoice preview")).to_contain_text("Preview")
    expect(page.locator("#preview-note")).to_contain_text("A preview, not an invoice")
    lines = page.locator("table.invoice-lines")
    expect(lines.locator("tbody tr")).to_have_count(3)
    expect(lines.locator("tbody tr", has_text="hourly")).to_contain_text("$0.06")
    expect(lines.locator("tbody tr", has_text="stopped (storage)")).to_contain_text("$0.01")
    expect(lines.locator("tbody tr", has_text="annual term")).to_contain_text("$1,340.00")
    foot = lines.locator("tfoot")
    expect(foot.locator("tr", has_text="Subtotal")).to_contain_text("$1,340.07")
    expect(foot.locator("tr", has_text="VAT")).to_contain_text(re.compile(r"VAT 19%\s*\$254\.61"))
    expect(foot.locator("tr.invoice-total")).to_contain_text("$1,594.68")
    screenshot(page, "money-invoice-preview")
    assert Invoice.objects.count() == 0  # a dry run: nothing saved, no number used

    # On the 1st, the run makes exactly what the preview showed.
    account = BillingAccount.objects.get(organization=member.organization)
    month_start = periods.month_start_of(periods.hour_floor(account.created_at))
    with time_machine.travel(periods.month_start_after(month_start) + timedelta(hours=1), tick=False):
        invoice = invoice_generate(account=account, period_start=month_start.date())
    assert invoice is not None
    assert (invoice.subtotal, invoice.vat_amount, invoice.total) == (Decimal("1340.07"), Decimal("254.61"),
                                                                     Decimal("1594.68"))
    assert [line.amount for line in invoice.lines.order_by("position")] == [Decimal("0.06"), Decimal("0.01"),
                                                                            Decimal("1340.00")]


@pytest.mark.django_db(transaction=True)
def test_switching_to_annual_states_the_charge_and_asks_for_confirmation(page):
    from django.utils import timezone
    from playwright.sync_api import expect

    from billing import periods
    from billing.models import AnnualCharge, Subscription, SubscriptionMode
    from deployments.tests.factories import DeploymentFactory
    from projects.tests.factories import PASSWORD

    member = _owner()
    deployment = DeploymentFactory(organization=member.organization, name="fleet-eu")

    log_in(page, "ada@example.com", PASSWORD)
    page.goto(f"/console/deployments/{deployment.id}")
    card = page.locator("#subscription")
    expect(card).to_contain_text("saving $236.80 (15%)")
    card.get_by_label("Renew automatically at the end of the term").check()
    card.get_by_role("button", name="Switch to annual…").click()

    # The confirmation page: nothing has changed yet.
    expect(page.get_by_role("heading", name="Switch to annual billing")).to_be_visible()
    assert not AnnualCharge.objects.exists()
    summary = page.locator("#annual-summary")
    today = timezone.now().date()
    expect(summary).to_contain_text(f"$1,340.00 on the next invoice ({periods.month_after(today):%Y-%m-%d})")
    expect(summary).to_contain_text(re.compile(rf"12 months, {today:%Y-%m-%d} to {today.year + 1}-"))
    expect(summary).to_contain_text("Renews automatically")
    expect(summary).to_contain_text("Save $236.80 (15%) against a year of hours ($1,576.80)")
    expect(page.locator("#annual-irreversible")).to_contain_text("This cannot be undone")
    screenshot(page, "money-switch-to-annual")

    # Cancel goes back without a charge; confirming switches.
    page.get_by_role("link", name="Cancel").click()
    expect(page.get_by_role("heading", name="fleet-eu")).to_be_visible()
    assert not AnnualCharge.objects.exists()
    page.locator("#subscription").get_by_role("button", name="Switch to annual…").click()
    expect(page.locator("#annual-summary")).to_contain_text("Does not renew: returns to hourly billing ($0.18 / hour)")
    page.get_by_role("button", name="Confirm: charge $1,340.00").click()
    expect(page.get_by_text("fleet-eu is now on annual billing.")).to_be_visible()
    subscription = Subscription.objects.get(deployment=deployment)
    assert subscription.mode == SubscriptionMode.ANNUAL and not subscription.renews
    assert [str(c.amount) for c in AnnualCharge.objects.all()] == ["1340.00"]


@pytest.mark.django_db(transaction=True)
def test_stop_and_scale_say_who_is_disconnected_and_the_new_hourly_price_before_they_run(page):
    from playwright.sync_api import expect

    from deployments.models import Deployment
    from deployments.tests.factories import DeploymentFactory
    from projects.tests.factories import PASSWORD

    member = _owner()
    deployment = DeploymentFactory(organization=member.organization, name="fleet-eu")

    log_in(page, "ada@example.com", PASSWORD)
    page.goto(f"/console/deployments/{deployment.id}")
    manage = page.get_by_role("region", name="Manage")
    # The old help said stopped deployments are not billed; they are, at the storage rate.
    expect(manage).to_contain_text("stopped deployments are billed at the storage rate ($0.01 / hour)")
    expect(manage).not_to_contain_text("not billed")

    manage.get_by_role("link", name="Stop…").click()
    expect(page.get_by_role("heading", name="Stop fleet-eu?")).to_be_visible()
    expect(page.locator("#consequences")).to_contain_text("Every connected client is disconnected")
    expect(page.locator("#consequences")).to_contain_text("still billed, at the storage rate")
    price = page.locator("#price-change tbody tr", has_text="Price per hour")
    expect(price).to_contain_text(re.compile(r"\$0\.18\s*\$0\.01"))
    screenshot(page, "money-stop-confirm")
    page.get_by_role("link", name="Cancel").click()
    deployment.refresh_from_db()
    assert deployment.status == "running"  # nothing happened on the way

    manage = page.get_by_role("region", name="Manage")
    manage.get_by_label("New size").select_option("basic-5k")
    manage.get_by_role("button", name="Scale…").click()
    expect(page.get_by_role("heading", name="Scale fleet-eu to Basic 5K?")).to_be_visible()
    # The preview: one node to one node surges (clients move, a node is always there), outside the window.
    expect(page.locator("#consequences")).to_contain_text("each client reconnects up to twice")
    expect(page.locator("#disconnect")).to_have_attribute("data-kind", "rolling")
    expect(page.locator("#maintenance-window")).to_contain_text("maintenance window")
    month = page.locator("#price-change tbody tr", has_text="About a month running")
    expect(month).to_contain_text(re.compile(r"\$131\.40\s*\$328\.50"))
    running = page.locator("#price-change tbody tr", has_text="while running")
    expect(running).to_contain_text(re.compile(r"\$0\.18\s*\$0\.45"))
    stopped = page.locator("#price-change tbody tr", has_text="while stopped")
    expect(stopped).to_contain_text(re.compile(r"\$0\.01\s*\$0\.02"))
    screenshot(page, "money-scale-confirm")
    assert Deployment.objects.get(pk=deployment.pk).status == "running"
    page.get_by_role("button", name="Scale to Basic 5K").click()
    expect(page.locator("#flash")).to_contain_text("Scaling fleet-eu to Basic 5K")
    assert Deployment.objects.get(pk=deployment.pk).status == "scaling"

    # Stop confirmed (the deployment is set back to running, as if the scale had finished).
    Deployment.objects.filter(pk=deployment.pk).update(status="running", spec_id="basic-5k")
    page.goto(f"/console/deployments/{deployment.id}/stop")
    expect(page.locator("#price-change tbody tr", has_text="Price per hour")).to_contain_text(
        re.compile(r"\$0\.45\s*\$0\.02"))
    page.get_by_role("button", name="Stop deployment").click()
    expect(page.locator("#flash")).to_contain_text("Stopping fleet-eu.")
    assert Deployment.objects.get(pk=deployment.pk).status == "stopping"


@pytest.mark.django_db(transaction=True)
def test_the_create_form_shows_a_monthly_estimate_and_a_whole_percent_saving(page):
    from playwright.sync_api import expect

    from projects.tests.factories import PASSWORD, ProjectFactory

    member = _owner()
    ProjectFactory(organization=member.organization, name="telemetry")

    log_in(page, "ada@example.com", PASSWORD)
    page.goto("/console/deployments/new")
    card = page.locator("label.spec-card", has=page.locator('input[value="basic-1k"]'))
    expect(card.locator(".spec-card-price")).to_have_text("$0.18 / hour")
    expect(card.locator(".spec-card-monthly")).to_have_text("about $131.40 / month (730 h)")  # 0.18 × 8760 / 12
    expect(card.locator(".spec-card-annual")).to_have_text("or $1,340.00 / year")
    expect(card.locator(".saving")).to_have_text("save 15% with annual")
    expect(page.locator(".saving", has_text=".0%")).to_have_count(0)
    screenshot(page, "money-create-prices")
