"""Issue 17, item 1 in a real browser: SSO login through a real OpenID Provider (the npm ``oidc-provider`` on
loopback, its own login and consent pages), landing in the console with the role the IdP group maps to; and
"require SSO" refusing the password of the domain's people."""

from __future__ import annotations

import pytest
from django.utils import timezone

from tests.browser import BROWSER_MARKS, screenshot
from tests.oidc_support import CLIENT_ID, CLIENT_SECRET, start_oidc_provider

pytestmark = BROWSER_MARKS

USERS = {"alice@acme.test": {"name": "Alice Admin", "groups": ["mq-admins", "staff"]},
         "dora@acme.test": {"name": "Dora Dev", "groups": ["mq-devs"]}}


def _acme(issuer: str, **fields):
    from projects.models import SsoConnection, SsoDomain
    from projects.tests.factories import MembershipFactory

    owner = MembershipFactory(user__email="owner@acme.test", organization__name="Acme", role="owner")
    SsoDomain.objects.create(organization=owner.organization, domain="acme.test", token_hash="h-acme",
                             verified_at=timezone.now(), verified_by="email")
    SsoConnection.objects.create(organization=owner.organization, issuer=issuer, client_id=CLIENT_ID,
                                 client_secret=CLIENT_SECRET,
                                 group_mappings=[{"group": "mq-admins", "role": "admin"},
                                                 {"group": "mq-devs", "role": "developer"}], **fields)
    return owner.organization


def _sso_login(page, email: str) -> None:
    page.goto("/console/login")
    page.get_by_role("link", name="Log in with SSO").click()
    page.get_by_label("Work email").fill(email)
    page.get_by_role("button", name="Continue with SSO").click()
    _idp_login(page, email)


def _idp_login(page, email: str) -> None:
    # oidc-provider's own interaction pages: the login, then the consent.
    page.locator("input[name=login]").fill(email)
    page.locator("input[name=password]").fill("anything")
    page.locator("button[type=submit]").click()
    page.locator("button[type=submit]", has_text="Continue").click()
    page.wait_for_url(lambda url: "/console" in url and "/login" not in url)


@pytest.mark.django_db(transaction=True)
def test_sso_login_through_the_real_op_gives_the_mapped_role(page, live_server):
    from playwright.sync_api import expect

    from projects.models import AuditEvent, Membership

    with start_oidc_provider(redirect_uris=[f"{live_server.url}/console/sso/callback"], users=USERS) as issuer:
        organization = _acme(issuer)
        try:
            _sso_login(page, "alice@acme.test")
        finally:
            screenshot(page, "sso-login")
        membership = Membership.objects.get(organization=organization, user__email="alice@acme.test")
        assert membership.role == "admin"
        page.goto("/console/members")
        expect(page.locator("tbody tr", has_text="alice@acme.test")).to_contain_text("Admin")
        login = AuditEvent.objects.filter(action="user.login", changes__method="sso", changes__result="success")
        assert login.count() == 1


@pytest.mark.django_db(transaction=True)
def test_require_sso_refuses_the_password_and_sends_to_the_idp(page, live_server):
    from playwright.sync_api import expect

    from projects.models import Membership
    from projects.tests.factories import PASSWORD, MembershipFactory

    with start_oidc_provider(redirect_uris=[f"{live_server.url}/console/sso/callback"], users=USERS) as issuer:
        organization = _acme(issuer, require_sso=True)
        MembershipFactory(organization=organization, user__email="dora@acme.test", role="viewer")
        page.goto("/console/login")
        page.get_by_label("Email").fill("dora@acme.test")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_text("requires single sign-on for acme.test")).to_be_visible()
        expect(page.get_by_label("Work email")).to_have_value("dora@acme.test")
        screenshot(page, "sso-required")
        page.get_by_role("button", name="Continue with SSO").click()
        _idp_login(page, "dora@acme.test")
        # The IdP's group moves the member from viewer to developer.
        assert Membership.objects.get(organization=organization, user__email="dora@acme.test").role == "developer"
