"""In-page (htmx) actions that fail, and what a read-only role is offered, in a real browser."""

from __future__ import annotations

import re

import pytest

from tests.browser import BROWSER_MARKS, log_in, screenshot

pytestmark = BROWSER_MARKS


@pytest.mark.django_db(transaction=True)
def test_a_failed_htmx_action_shows_the_servers_message_next_to_it(page):
    from playwright.sync_api import expect

    from projects.roles import Role
    from projects.tests.factories import PASSWORD, MembershipFactory

    owner = MembershipFactory(user__email="ada@example.com", organization__name="Analytical Engines")
    other = MembershipFactory(organization=owner.organization, role=Role.VIEWER, user__email="bob@example.com")
    gone = MembershipFactory(organization=owner.organization, role=Role.VIEWER, user__email="eve@example.com")
    log_in(page, "ada@example.com", PASSWORD)
    page.get_by_role("link", name="Members").click()
    page.on("dialog", lambda dialog: dialog.accept())  # hx-confirm

    # Refused by the service (409): the last owner cannot leave.
    own_row = page.locator(f"#member-{owner.id}")
    own_row.get_by_role("button", name="Leave").click()
    alert = own_row.get_by_role("alert")
    expect(alert).to_have_text("The organization must keep at least one owner.")
    expect(page.locator("#flash")).not_to_contain_text("owner")  # where the action was, not at the top

    # Gone meanwhile (404, removed in another tab): said next to that row's button, the rest of the page intact.
    gone_id = gone.id
    gone_row = page.locator(f"#member-{gone_id}")
    gone.delete()
    gone_row.get_by_role("button", name="Remove").click()
    expect(gone_row.get_by_role("alert")).to_have_text(f"No member {gone_id}.")
    expect(page.get_by_role("heading", name="Members")).to_be_visible()
    screenshot(page, "htmx-error")

    # The server cannot be reached: the request's own area says so; a success afterwards clears it.
    other_row = page.locator(f"#member-{other.id}")
    page.route("**/remove", lambda route: route.abort())
    other_row.get_by_role("button", name="Remove").click()
    expect(other_row.get_by_role("alert")).to_have_text(re.compile("could not be reached"))
    page.unroute("**/remove")
    other_row.get_by_role("button", name="Remove").click()
    expect(page.locator(f"#member-{other.id}")).to_have_count(0)
    expect(page.locator("#flash")).to_contain_text("bob@example.com is no longer a member")


@pytest.mark.django_db(transaction=True)
def test_a_viewer_sees_no_create_stop_or_delete_buttons(page):
    from playwright.sync_api import expect

    from alerts.tests.factories import AlertChannelFactory, AlertRuleFactory
    from deployments.services import catalog_sync
    from deployments.tests.factories import DeploymentFactory
    from projects.roles import Role
    from projects.tests.factories import PASSWORD, MembershipFactory, ProjectFactory

    catalog_sync()  # a transactional test starts from empty tables
    owner = MembershipFactory(organization__name="Analytical Engines")
    organization = owner.organization
    project = ProjectFactory(organization=organization, name="telemetry")
    deployment = DeploymentFactory(organization=organization, project=project, name="fleet-eu")
    AlertChannelFactory(organization=organization, name="ops")
    AlertRuleFactory(organization=organization, project=project, name="busy")
    MembershipFactory(organization=organization, role=Role.VIEWER, user__email="vic@example.com")
    log_in(page, "vic@example.com", PASSWORD)

    writes = re.compile(r"^(New|Create|Add|Invite|Edit|Delete|Remove|Stop|Start|Scale|Retry|Revoke|Send test|Save)",
                        re.IGNORECASE)

    def assert_read_only(path: str) -> None:
        page.goto(path)
        main = page.locator("main")
        expect(main.get_by_role("button", name=writes)).to_have_count(0)
        expect(main.get_by_role("link", name=writes)).to_have_count(0)

    for path in ("/console/", "/console/deployments", f"/console/deployments/{deployment.id}",
                 f"/console/deployments/{deployment.id}/http-auth", "/console/alerts", "/console/alerts/rules",
                 "/console/alerts/channels", f"/console/deployments/{deployment.id}/access/users",
                 f"/console/deployments/{deployment.id}/access/acl",
                 f"/console/deployments/{deployment.id}/access/clients"):
        assert_read_only(path)
    page.goto(f"/console/deployments/{deployment.id}/http-auth")
    expect(page.locator("input[name=authn_url]")).to_be_disabled()  # shown to read, not a form to submit
    page.goto("/console/members")
    # Leaving is the viewer's own business; nothing else on the page changes anything.
    expect(page.locator("main").get_by_role("button")).to_have_text(["Leave"])
    expect(page.get_by_role("link", name="Invite someone")).to_have_count(0)
    page.goto(f"/console/deployments/{deployment.id}")
    expect(page.get_by_text("Your role can view this deployment but not change it.")).to_be_visible()
    screenshot(page, "viewer-deployment")
