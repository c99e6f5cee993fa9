"""A deployment's Access area in a real browser: a user with a password shown once, an ACL rule and the
"would this be allowed" check, and the clients tab's empty state."""

from __future__ import annotations

import re

import pytest

from tests.browser import BROWSER_MARKS, log_in, screenshot

pytestmark = BROWSER_MARKS


@pytest.mark.django_db(transaction=True)
def test_create_a_user_add_an_acl_rule_check_it_and_see_no_clients(page):
    from playwright.sync_api import expect

    from deployments.services import catalog_sync
    from deployments.tests.factories import DeploymentFactory
    from projects.tests.factories import PASSWORD, MembershipFactory

    catalog_sync()  # a transactional test starts from empty tables
    member = MembershipFactory(user__email="ada@example.com", organization__name="Analytical Engines")
    deployment = DeploymentFactory(organization=member.organization, name="fleet-eu",
                                   endpoints={"mqtt": "mq-abc.example.net:1883", "mqtts": "mq-abc.example.net:8883"})
    log_in(page, "ada@example.com", PASSWORD)
    page.goto(f"/console/deployments/{deployment.id}")
    connect = page.locator("#connect")
    expect(connect).to_contain_text('mosquitto_pub -h mq-abc.example.net -p 1883 -u "$MQTT_USERNAME"')
    connect.get_by_role("link", name="add one under Access").click()

    # A user without a password: one is generated and shown once, with a copy button and the commands.
    expect(page.get_by_text("No users yet")).to_be_visible()
    page.get_by_label("Username", exact=True).fill("sensor-1")
    page.get_by_role("button", name="Add user").click()
    expect(page.get_by_role("alert")).to_contain_text("will never be shown again")
    password = page.locator("#mqtt-password").inner_text()
    assert re.fullmatch(r"\S{16,}", password)
    expect(page.locator("#copy-password")).to_be_visible()
    expect(page.locator("#snippet-mqtt-mosquitto")).to_contain_text(f"-u sensor-1 -P {password}")
    screenshot(page, "access-password")
    page.get_by_role("link", name="Done").click()
    expect(page.get_by_role("cell", name="sensor-1")).to_be_visible()
    assert password not in page.content()

    # An ACL rule, added, filled in and saved; then asked about.
    page.get_by_role("navigation", name="Access").get_by_role("link", name="ACL").click()
    expect(page.get_by_text("No rules")).to_be_visible()
    page.get_by_role("button", name="Add rule").click()
    rule = page.locator("#rule-1")
    expect(page.get_by_text("Unsaved changes")).to_be_visible()
    rule.get_by_label("Who").select_option("username")
    rule.get_by_label("Username or client ID").fill("sensor-1")
    rule.get_by_label("Topics (one per line)").fill("dev/${username}/#")
    page.get_by_role("button", name="Save ACL").click()
    expect(page.get_by_text("ACL saved")).to_be_visible()
    expect(page.locator("#access-state")).to_contain_text("Pending")

    check = page.locator("#acl-check")
    check.get_by_label("Username").fill("sensor-1")
    check.get_by_label("Client ID").fill("device-1")
    check.get_by_label("Action").select_option("publish")
    check.get_by_label("Topic").fill("dev/sensor-1/temp")
    check.get_by_role("button", name="Check").click()
    verdict = page.locator("#acl-verdict")
    expect(verdict).to_contain_text("Allowed")
    expect(verdict).to_contain_text("rule 1")
    check = page.locator("#acl-check")
    check.get_by_label("Topic").fill("dev/other/temp")
    check.get_by_role("button", name="Check").click()
    expect(page.locator("#acl-verdict")).to_contain_text("Denied")
    expect(page.locator("#acl-verdict")).to_contain_text("No rule matches")
    screenshot(page, "access-acl")

    # Nobody connected (no broker here to ask): the empty state points to the Connect card.
    page.get_by_role("navigation", name="Access").get_by_role("link", name="Connected clients").click()
    expect(page.locator("#clients-empty")).to_contain_text("No client connected. Connect one with the snippet in")
    page.locator("#clients-empty").get_by_role("link", name="Connect").click()
    expect(page.get_by_role("heading", name="Connect")).to_be_visible()
