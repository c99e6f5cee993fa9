"""Issue 18, the maintenance window form in a real browser (see ``tests/browser.py``): bad values are named next
to their fields, a good window lists its next occurrences in the window's and the viewer's time zone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from tests.browser import BROWSER_MARKS, log_in, screenshot

pytestmark = BROWSER_MARKS


@pytest.mark.django_db(transaction=True)
def test_the_maintenance_window_form(page, live_server):
    from playwright.sync_api import expect

    from deployments.tests.factories import DeploymentFactory
    from projects.tests.factories import PASSWORD, MembershipFactory

    owner = MembershipFactory(user__email="ada@example.com")
    deployment = DeploymentFactory(organization=owner.organization, name="fleet-eu")
    # A viewer in New York: the "your time" column is theirs, not the server's or the window's.
    page = page.context.browser.new_context(base_url=live_server.url, timezone_id="America/New_York",
                                            viewport={"width": 1280, "height": 860}).new_page()
    log_in(page, "ada@example.com", PASSWORD)
    page.goto(f"/console/deployments/{deployment.id}")
    page.get_by_role("link", name="Maintenance window and exclusions").click()

    form = page.locator("#maintenance-window-form")
    form.get_by_label("Start time").fill("3:00")
    form.get_by_label("Length (minutes)").fill("0")
    form.get_by_label("Time zone").fill("Europe/Atlantis")
    form.get_by_role("button", name="Save window").click()
    for label, message in (("Start time", "HH:MM"), ("Length (minutes)", "1 to 1440"),
                           ("Time zone", "IANA time zone")):
        control = page.get_by_label(label, exact=True)
        expect(control).to_have_attribute("aria-invalid", "true")
        expect(page.locator(".field", has=control).locator(".error")).to_contain_text(message)

    form.get_by_label("Weekday").select_option("saturday")
    form.get_by_label("Start time").fill("23:30")
    form.get_by_label("Length (minutes)").fill("90")
    form.get_by_label("Time zone").fill("Asia/Tokyo")
    form.get_by_role("button", name="Save window").click()
    expect(page.get_by_role("status").or_(page.locator(".messages"))).to_contain_text("Maintenance window saved")
    rows = page.locator("#next-occurrences tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.first.locator("td").first).to_contain_text("Sat")
    expect(rows.first.locator("td").first).to_contain_text("23:30–01:00 (UTC+0900)")
    # Saturday 23:30 in Tokyo is 14:30 UTC: 09:30 EST or 10:30 EDT in New York, depending on the season.
    start = dt.datetime.fromisoformat(rows.first.locator("time").get_attribute("datetime"))
    in_new_york = start.astimezone(ZoneInfo("America/New_York"))
    expect(rows.first.locator("time")).to_contain_text(f"{in_new_york:%H:%M} {in_new_york:%Z}")
    screenshot(page, "maintenance-window")
