"""What the console offers and how its in-page (htmx) actions fail.

Every button, form and link to a form page that a role sees must be one that role may use (the same
``Principal.has`` check the views and services make, given to templates once as ``can``); and an htmx request
that is refused answers with a short message, which the console's script shows next to what made it.
"""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.test import Client

from alerts.tests.factories import AlertChannelFactory, AlertFactory, AlertRuleFactory
from billing.tests.factories import BudgetFactory, InvoiceFactory
from deployments.models import HttpAuthConfig
from deployments.tests.factories import DeploymentFactory, PeeringFactory
from projects.models import Membership
from projects.roles import Role
from projects.tests.factories import InvitationFactory, MembershipFactory, ProjectFactory, make_api_key
from tests.support import console_login, console_url

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true", "HX-Current-URL": "http://testserver/console/members"}


# --- htmx refusals --------------------------------------------------------------------------------------------
def test_every_console_page_loads_the_error_script():
    client, _ = console_login()
    html = client.get(console_url("home")).content.decode()
    assert "mqcloud/js/console.js" in html and "mqcloud/js/htmx.min.js" in html


def test_a_refused_row_action_answers_htmx_with_the_detail_not_a_page():
    client, owner = console_login()
    response = client.post(console_url("member-remove", owner.id), headers=HTMX)
    assert 400 <= response.status_code < 500
    body = response.content.decode()
    assert "at least one owner" in body and 'role="alert"' in body and "data-error-detail" in body
    assert "<html" not in body and "<tr" not in body
    assert Membership.objects.filter(pk=owner.pk).exists()


def test_a_row_gone_meanwhile_answers_htmx_with_a_short_404():
    client, owner = console_login()
    other = MembershipFactory(organization=owner.organization, role=Role.VIEWER)
    gone = other.id
    other.delete()
    response = client.post(console_url("member-remove", gone), headers=HTMX)
    assert response.status_code == 404
    body = response.content.decode()
    assert "data-error-detail" in body and "<html" not in body and len(body) < 400


def test_a_forbidden_htmx_request_answers_with_the_detail():
    client, viewer = console_login(Role.VIEWER)
    other = MembershipFactory(organization=viewer.organization, role=Role.VIEWER)
    response = client.post(console_url("member-remove", other.id), headers=HTMX)
    assert response.status_code == 403
    assert "does not allow this action" in response.content.decode()
    assert "<html" not in response.content.decode()


def test_the_same_refusal_without_htmx_is_still_a_page():
    client, viewer = console_login(Role.VIEWER)
    other = MembershipFactory(organization=viewer.organization, role=Role.VIEWER)
    response = client.post(console_url("member-remove", other.id))
    assert response.status_code == 403
    assert "<html" in response.content.decode()


def test_an_htmx_request_after_the_session_ended_reloads_to_the_login_page():
    client, owner = console_login()
    other = MembershipFactory(organization=owner.organization, role=Role.VIEWER)
    client.logout()
    response = client.post(console_url("member-remove", other.id), headers=HTMX)
    assert response.status_code == 401
    assert response["HX-Redirect"] == console_url("login") + "?next=/console/members"
    assert not response.content  # nothing for htmx to swap into the row


# --- what each role is offered --------------------------------------------------------------------------------
def _organization_with_everything(owner: Membership) -> None:
    organization = owner.organization
    project = ProjectFactory(organization=organization, name="alpha")
    peering = PeeringFactory(organization=organization, deployment__project=project, status="active")
    deployment = peering.deployment
    DeploymentFactory(organization=organization, project=project, status="failed", name="broken")
    HttpAuthConfig.objects.create(organization=organization, deployment=deployment,
                                  authn_url="https://auth.example.com/check")
    channel = AlertChannelFactory(organization=organization)
    rule = AlertRuleFactory(organization=organization, project=project)
    rule.channels.add(channel)
    AlertFactory(organization=organization, rule=rule, deployment=deployment)
    BudgetFactory(organization=organization)
    InvoiceFactory(organization=organization)
    MembershipFactory(organization=organization, role=Role.DEVELOPER)
    InvitationFactory(organization=organization)
    make_api_key(organization, role=Role.DEVELOPER)


START_PAGES = ["home", "members", "api-keys", "audit", "deployments", "alerts", "alert-rules", "alert-channels",
               "alert-deliveries", "billing", "billing-account", "billing-invoices"]
ACTION = re.compile(r'<form[^>]*\bmethod="post"[^>]*>|\bhx-post="[^"]+"', re.IGNORECASE)
URL_IN = re.compile(r'(?:action|hx-post)="([^"]+)"')
LINK = re.compile(r'href="(/console/[^"#?]*)')
# Posting these is for everyone (they change only the session or the member's own membership).
# Actions on one's own session or account, not on the organization: every role has them.
EVERYONE = re.compile(r"^/console/(logout|switch-organization|account/password|account/two-factor(/setup)?)$")


def _crawl(client: Client) -> tuple[dict[str, str], set[str]]:
    """Pages reachable from the nav (two clicks deep) and the POST actions they show, with the page of each."""
    seen: dict[str, int] = {}
    linked: set[str] = set()
    actions: dict[str, str] = {}
    queue = [(console_url(name), 0) for name in START_PAGES]
    while queue:
        path, depth = queue.pop(0)
        if path in seen or path.endswith(("/logout", "/switch-organization")):
            continue
        response = client.get(path)
        seen[path] = response.status_code
        if response.status_code != 200 or "text/html" not in response["Content-Type"]:
            continue
        html = response.content.decode()
        for tag in ACTION.findall(html):
            match = URL_IN.search(tag)
            actions.setdefault(unescape(match.group(1)) if match else path, path)
        if depth < 2:
            links = {unescape(link) for link in LINK.findall(html)}
            linked |= links
            queue += [(link, depth + 1) for link in sorted(links)]
    return actions, {path for path in linked if seen.get(path) == 403}


@pytest.mark.parametrize(("role", "limited"), [(Role.VIEWER, False), (Role.DEVELOPER, False), (Role.BILLING, False),
                                               (Role.DEVELOPER, True), (Role.ADMIN, True)])
def test_a_role_is_offered_only_actions_it_may_perform(role, limited):
    client, owner = console_login(Role.OWNER)
    _organization_with_everything(owner)
    projects = [owner.organization.projects.get(name="alpha")] if limited else []
    member = MembershipFactory(organization=owner.organization, role=role, projects=projects)
    client = Client()
    client.force_login(member.user)

    actions, forbidden_links = _crawl(client)
    # No link leads to a page the role is refused (a form it could not submit, or a page it cannot read).
    assert not forbidden_links, f"{role} is shown links it may not follow: {sorted(forbidden_links)}"
    refused = {}
    leave = console_url("member-remove", member.id)  # posted, it would end the walk
    for action, page in actions.items():
        if EVERYONE.match(action) or action == leave:
            continue
        response = client.post(action)
        if response.status_code == 403:
            refused[action] = page
    assert not refused, f"{role} is shown actions it may not perform: {refused}"


def test_a_viewer_sees_no_button_that_changes_anything_but_its_own_membership():
    client, owner = console_login(Role.OWNER)
    _organization_with_everything(owner)
    viewer = MembershipFactory(organization=owner.organization, role=Role.VIEWER)
    client = Client()
    client.force_login(viewer.user)
    actions, _ = _crawl(client)
    assert {a for a in actions if not EVERYONE.match(a)} == {console_url("member-remove", viewer.id)}  # Leave
