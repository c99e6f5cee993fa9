"""Issue 17, item 5 in a real browser: an owner makes the SCIM token (shown once), the identity provider (a real
SCIM client over HTTP) pushes a user and a group, the owner maps the group to a role, and the member follows."""

from __future__ import annotations

import pytest

from tests.browser import BROWSER_MARKS, log_in, screenshot

pytestmark = BROWSER_MARKS


@pytest.mark.django_db(transaction=True)
def test_owner_makes_the_token_and_maps_a_pushed_group(page, live_server):
    import httpx2
    from playwright.sync_api import expect

    from projects.models import Membership
    from projects.tests.factories import PASSWORD, MembershipFactory, ProjectFactory

    owner = MembershipFactory(user__email="ada@example.com", organization__name="Analytical Engines")
    ProjectFactory(organization=owner.organization, name="telemetry")
    log_in(page, "ada@example.com", PASSWORD)
    page.get_by_role("navigation", name="Console").get_by_role("link", name="SCIM provisioning").click()
    expect(page.get_by_text("No SCIM token")).to_be_visible()
    page.get_by_role("button", name="Create token").click()
    secret = page.locator("#scim-token-secret").inner_text()
    assert secret.startswith("scim_")

    base = page.locator("#scim-base-url").inner_text()
    with httpx2.Client(base_url=base, trust_env=False, timeout=10,
                       headers={"Authorization": f"Bearer {secret}"}) as provider:
        user = provider.post("Users", json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                            "userName": "grace@example.com"})
        assert user.status_code == 201, user.text
        group = provider.post("Groups", json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                              "displayName": "platform-team",
                                              "members": [{"value": user.json()["id"]}]})
        assert group.status_code == 201, group.text

    page.reload()
    expect(page.locator("#scim-token-secret")).to_have_count(0)  # shown once
    page.get_by_label("Role of platform-team").select_option("developer")
    page.get_by_label("Projects of platform-team").select_option(label="telemetry")
    page.get_by_role("row", name="platform-team").get_by_role("button", name="Save").click()
    expect(page.get_by_text("Group platform-team saved")).to_be_visible()
    screenshot(page, "scim-provisioning")
    member = Membership.objects.get(organization=owner.organization, user__email="grace@example.com")
    assert member.role == "developer" and len(member.project_limit() or ()) == 1
