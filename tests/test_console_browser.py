"""The console in a real browser: Debian's headless Chromium driven by Playwright against a live server."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; Django would otherwise refuse ORM calls here.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's /usr/bin/chromium (make browser installs it)"),
]


@pytest.fixture
def page(live_server):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 860})
        context.set_default_timeout(15_000)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()


@pytest.mark.django_db(transaction=True)
def test_signup_project_api_key_and_audit_log(page):
    from playwright.sync_api import expect

    page.goto("/console/signup")
    page.get_by_label("Your name").fill("Grace Hopper")
    page.get_by_label("Email").fill("grace@example.com")
    page.get_by_label("Password").fill("a-long-enough-passphrase")
    page.get_by_label("Organization").fill("Navy Labs")
    page.get_by_label("Country").fill("US")
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
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console.png"), full_page=True)
