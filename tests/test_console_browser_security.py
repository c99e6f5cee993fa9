"""Issue 17, items 2-4 in a real browser: a person ends a session from their list and the other browser is
logged out; the IP allowlist's lock-out guard on the form, then the refusal page for an address outside it;
two-factor enrolment and login, a recovery code and new codes."""

from __future__ import annotations

import re

import pytest

from tests.browser import BROWSER_MARKS, log_in, screenshot

pytestmark = BROWSER_MARKS

IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.1 Mobile/15E148 Safari/604.1")


@pytest.mark.django_db(transaction=True)
def test_ending_a_session_from_the_list_logs_the_other_browser_out(page, live_server):
    from playwright.sync_api import expect

    from projects.tests.factories import PASSWORD, MembershipFactory

    MembershipFactory(user__email="ada@example.com", organization__name="Analytical Engines")
    phone_context = page.context.browser.new_context(base_url=live_server.url, user_agent=IPHONE,
                                                     viewport={"width": 390, "height": 800})
    try:
        phone = phone_context.new_page()
        log_in(phone, "ada@example.com", PASSWORD)
        log_in(page, "ada@example.com", PASSWORD)
        page.get_by_role("navigation", name="Console").get_by_role("link", name="Your sessions").click()
        rows = page.locator("tbody tr")
        expect(rows).to_have_count(2)
        expect(rows.filter(has_text="this session")).to_contain_text("127.0.0.1")
        phone_row = rows.filter(has_text="Mobile Safari 17 on iOS (iPhone)")
        expect(phone_row).to_be_visible()
        screenshot(page, "sessions-two")
        page.once("dialog", lambda dialog: dialog.accept())
        phone_row.get_by_role("button", name=re.compile("End session on Mobile Safari")).click()
        expect(page.get_by_text("that browser is logged out")).to_be_visible()
        expect(rows).to_have_count(1)

        phone.reload()
        expect(phone).to_have_url(re.compile(r"/console/login"))
        expect(phone.get_by_role("button", name="Log in")).to_be_visible()
        page.reload()
        expect(page.locator("h1")).to_have_text("Your sessions")  # this browser is still in
    finally:
        phone_context.close()


@pytest.mark.django_db(transaction=True)
def test_the_allowlist_guard_then_the_refusal_page(page):
    from playwright.sync_api import expect

    from projects.models import AuditEvent, Organization
    from projects.tests.factories import PASSWORD, MembershipFactory

    owner = MembershipFactory(user__email="ada@example.com", organization__name="Analytical Engines")
    log_in(page, "ada@example.com", PASSWORD)
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Security").click()
    expect(page.locator("#your-ip")).to_have_text("127.0.0.1")
    allowlist = page.get_by_label("IP allowlist")
    allowlist.fill("10.0.0.0/8\n2001:db8::/32")
    page.get_by_role("button", name="Save security settings").click()
    expect(allowlist).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".field", has=allowlist).locator(".error")).to_contain_text(
        "Your current address (127.0.0.1) is not in the list")
    page.get_by_label("IP allowlist").fill("10.0.0.0/8\n2001:db8::/32\n127.0.0.1")
    page.get_by_role("button", name="Save security settings").click()
    expect(page.get_by_text("Security settings saved.")).to_be_visible()
    expect(page.get_by_label("IP allowlist")).to_have_value("10.0.0.0/8\n2001:db8::/32\n127.0.0.1/32")

    # Another admin, elsewhere, narrows the list: this browser's next page is refused, and says why.
    Organization.objects.filter(pk=owner.organization_id).update(ip_allowlist=["10.0.0.0/8"])
    response = page.goto("/console/deployments")
    assert response is not None and response.status == 403
    expect(page.locator("h1")).to_have_text("Address not allowed")
    expect(page.locator("[data-error-detail]")).to_contain_text(
        "Analytical Engines accepts requests only from the networks on its IP allowlist, and your address "
        "(127.0.0.1) is not one of them")
    expect(page.get_by_role("navigation", name="Console")).to_have_count(0)
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    screenshot(page, "ip-allowlist-refused")
    assert AuditEvent.objects.filter(organization=owner.organization, action="organization.ip_refused").count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_factor_enrolment_then_a_login_with_a_code(page):
    """Item 2: the secret read from the setup page (as a person types it into their app), the first code turns it
    on and shows the recovery codes once; after logging out the password alone is not enough, a code is."""
    import time

    import pyotp
    from playwright.sync_api import expect

    from projects.models import AuditEvent
    from projects.tests.factories import PASSWORD, MembershipFactory

    MembershipFactory(user__email="ada@example.com", organization__name="Analytical Engines")
    log_in(page, "ada@example.com", PASSWORD)
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Two-factor login").click()
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_role("button", name="Set up two-factor login").click()
    expect(page.get_by_role("img", name=re.compile("QR code for mqcloud"))).to_be_visible()
    screenshot(page, "two-factor-setup")
    totp = pyotp.TOTP(page.locator("#totp-secret").inner_text().replace(" ", ""))
    # The previous 30-second step's code (still accepted, for clock drift): the current one stays unused for the
    # login below, since a code is never accepted twice.
    page.get_by_label("Code", exact=True).fill(totp.at(time.time() - 30))
    page.get_by_role("button", name="Turn on two-factor login").click()
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    screenshot(page, "two-factor-recovery-codes")

    page.get_by_role("button", name="Log out").click()
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/console/login/two-factor$"))
    page.goto("/console/members")  # half-way is not logged in
    expect(page).to_have_url(re.compile(r"/console/login\?next="))
    page.goto("/console/login/two-factor")
    page.get_by_label("Code", exact=True).fill(totp.now())
    page.get_by_role("button", name="Verify and log in").click()
    expect(page.locator("h1")).to_have_text("Projects")
    methods = list(AuditEvent.objects.filter(action="user.login").values_list("changes__method", flat=True))
    assert "password+totp" in methods


@pytest.mark.django_db(transaction=True)
def test_a_lost_phone_a_recovery_code_then_new_codes(page):
    """Item 2's recovery code in a browser: the code page takes one (used up, the count said), and Account →
    Two-factor login gives ten new ones for a current code from the app, the old ones void."""
    import time
    from datetime import timedelta

    import pyotp
    import time_machine
    from django.utils import timezone
    from playwright.sync_api import expect

    from projects.services.two_factor import two_factor_enrol_begin, two_factor_enrol_confirm
    from projects.tests.factories import PASSWORD, MembershipFactory

    member = MembershipFactory(user__email="ada@example.com", organization__name="Analytical Engines")
    with time_machine.travel(timezone.now() - timedelta(seconds=90)):
        device = two_factor_enrol_begin(user=member.user)
        totp = pyotp.TOTP(device.secret)
        codes = two_factor_enrol_confirm(user=member.user, code=totp.now(), ip="127.0.0.1")

    page.goto("/console/login")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_label("Code", exact=True).fill(codes[0])
    page.get_by_role("button", name="Verify and log in").click()
    expect(page.get_by_text("You logged in with a recovery code; 9 left.")).to_be_visible()

    page.get_by_role("navigation", name="Console").get_by_role("link", name="Two-factor login").click()
    expect(page.locator("#two-factor-status")).to_contain_text("Recovery codes left: 9 of 10")
    page.get_by_label("Code from your app").fill(totp.at(time.time()))
    page.get_by_role("button", name="Get new recovery codes").click()
    expect(page.get_by_role("heading", name="Your new recovery codes")).to_be_visible()
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    screenshot(page, "two-factor-new-recovery-codes")
