"""The console in a real browser: Debian's headless Chromium driven by Playwright against a live server."""

from __future__ import annotations

import re

import pytest

from tests.browser import BROWSER_MARKS, log_in, screenshot

pytestmark = BROWSER_MARKS


@pytest.mark.django_db(transaction=True)
def test_signup_project_api_key_and_audit_log(page):
    from playwright.sync_api import expect

    page.goto("/console/signup")
    page.get_by_label("Your name").fill("Grace Hopper")
    page.get_by_label("Email").fill("grace@example.com")
    page.get_by_label("Password").fill("a-long-enough-passphrase")
    page.get_by_label("Organization").fill("Navy Labs")
    page.get_by_label("Country").select_option("US")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_text("Welcome to mqcloud")).to_be_visible()
    expect(page.get_by_role("cell", name="Default project")).to_be_visible()

    page.get_by_role("link", name="New project").first.click()
    page.get_by_label("Name").fill("telemetry")
    page.get_by_label("Description").fill("Sensors on the fleet")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("cell", name="telemetry", exact=True)).to_be_visible()

    page.get_by_role("link", name="API keys").click()
    page.get_by_role("link", name="New API key").first.click()
    page.get_by_label("Name").fill("ci pipeline")
    page.get_by_label("Role").select_option("developer")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#api-key-secret")
    expect(secret).to_have_text(re.compile(r"^mqc_[0-9a-f]+_\S{20,}$"))
    secret_text = secret.inner_text()
    page.get_by_role("link", name="Done").click()
    expect(page.get_by_role("cell", name="ci pipeline")).to_be_visible()
    assert secret_text not in page.content()

    page.get_by_role("link", name="Audit log").click()
    for action in ("organization.create", "project.create", "api_key.create"):
        expect(page.get_by_text(action, exact=True).first).to_be_visible()
    screenshot(page, "console")


@pytest.mark.django_db(transaction=True)
def test_create_a_deployment_and_see_it_listed_as_pending(page):
    from playwright.sync_api import expect

    from deployments.services import catalog_sync
    from projects.tests.factories import PASSWORD, MembershipFactory, ProjectFactory

    catalog_sync()  # a transactional test starts from empty tables: the session's catalog was flushed
    member = MembershipFactory(user__email="ada@example.com", organization__name="Analytical Engines")
    ProjectFactory(organization=member.organization, name="telemetry")

    log_in(page, "ada@example.com", PASSWORD)

    page.get_by_role("link", name="Deployments").click()
    expect(page.get_by_text("No deployments yet")).to_be_visible()
    page.get_by_role("link", name="Create deployment").first.click()
    page.get_by_label("Name").fill("fleet-eu")
    page.get_by_label("Region").select_option("aws-ap-southeast-1")
    # Singapore offers no basic tier: the page greys those sizes out.
    expect(page.get_by_role("radio", name="Basic 1K")).to_be_disabled()
    page.get_by_label("Region").select_option("aws-eu-central-1")
    page.get_by_text("Professional 5K").click()
    expect(page.get_by_role("radio", name="Professional 5K")).to_be_checked()
    screenshot(page, "deployment-create")
    page.get_by_role("button", name="Create deployment").click()

    expect(page.get_by_text("Provisioning started")).to_be_visible()
    expect(page.get_by_role("heading", name="fleet-eu")).to_be_visible()
    expect(page.locator("#deployment-status")).to_have_text("Pending")
    expect(page.get_by_text("Endpoints appear when the deployment is running")).to_be_visible()
    screenshot(page, "deployment-detail")

    page.get_by_role("link", name="Deployments").first.click()
    row = page.locator("#deployment-rows tr", has_text="fleet-eu")
    expect(row).to_contain_text("Pending")
    expect(row).to_contain_text("Professional 5K")
    expect(row).to_contain_text("AWS Frankfurt")
    # No worker runs here, so the row stays pending and the table keeps polling.
    expect(page.locator("#deployment-rows")).to_have_attribute("hx-trigger", "every 3s")
    screenshot(page, "deployments")
