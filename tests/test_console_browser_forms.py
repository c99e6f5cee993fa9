"""Issue 14, the forms a new user got stuck on, in a real browser (see ``tests/browser.py``): peering retry and
the acceptance summary (6), the simulated customer fill (7), the alert channel form (9), the refusal of a private
URL (10), the invitation form (13) and alert rule metrics in words (15).

Nothing leaves the machine: AWS is moto on loopback, and the refused URL is refused before any connection.
"""

from __future__ import annotations

import re

import pytest

# The simulated clouds of the peering tests (moto over HTTP), used here as fixtures.
from deployments.tests.conftest import aws_cloud, moto_server  # noqa: F401
from tests.browser import BROWSER_MARKS, log_in, screenshot

pytestmark = BROWSER_MARKS

CUSTOMER_CIDR = "10.20.0.0/16"


@pytest.fixture
def owner(transactional_db):
    from projects.tests.factories import MembershipFactory

    return MembershipFactory(user__email="ada@example.com", organization__name="Analytical Engines")


@pytest.fixture
def professional(owner):
    from deployments.models import Spec
    from deployments.tests.factories import DeploymentFactory

    return DeploymentFactory(organization=owner.organization, spec=Spec.objects.get(id="pro-1k"), name="fleet-us")


def _converge(peering_id: str):
    from deployments.models import Peering
    from deployments.peering import worker

    worker.peering_converge_once(peering_id)
    return Peering.objects.get(pk=peering_id)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("aws_cloud")
def test_a_failed_peering_is_retried_from_the_console_and_collapses_once_active(page, owner, professional):
    from playwright.sync_api import expect

    from deployments.peering import customer_side, services
    from deployments.tests.conftest import CUSTOMER_ACCOUNT
    from projects.tenancy import Principal
    from projects.tests.factories import PASSWORD

    vpc_id = customer_side.ensure_customer_vpc(CUSTOMER_ACCOUNT, "us-east-1", CUSTOMER_CIDR)
    peering = services.peering_create(
        principal=Principal.for_membership(owner), deployment=professional, provider="aws",
        fields={"account_id": CUSTOMER_ACCOUNT, "vpc_id": vpc_id, "region": "us-east-1", "cidr": CUSTOMER_CIDR})
    peering = _converge(peering.id)
    customer_side.play(peering, accept=False)
    assert _converge(peering.id).status == "failed"

    log_in(page, "ada@example.com", PASSWORD)
    page.goto(f"/console/deployments/{professional.id}")
    row = page.locator("#peerings tr", has_text=CUSTOMER_CIDR)
    expect(row).to_contain_text("Failed")
    expect(row.get_by_role("button", name=f"Retry the peering with {CUSTOMER_CIDR}")).to_be_visible()
    row.get_by_role("link", name="Instructions").click()
    expect(page.get_by_role("alert")).to_contain_text("AWS: rejected")
    steps = page.get_by_role("region", name="On your side")
    expect(steps).to_contain_text("Nothing to do on your side now")
    expect(steps.locator("pre")).to_have_count(0)  # no accept command for a request that is gone
    screenshot(page, "peering-failed")

    steps.get_by_role("button", name="Retry").click()
    expect(page.get_by_text(f"Asking again for the peering with {CUSTOMER_CIDR}.")).to_be_visible()
    expect(page.locator(".badge-peering-pending")).to_be_visible()

    peering = _converge(peering.id)
    assert peering.status == "pending_acceptance"
    customer_side.play(peering)
    assert _converge(peering.id).status == "active"
    page.reload()
    summary = steps.locator("details.peering-steps-done > summary")
    expect(summary).to_contain_text(f"Done: your network {CUSTOMER_CIDR} reaches the brokers privately")
    expect(steps.get_by_text("Route ", exact=False).first).to_be_hidden()  # collapsed
    summary.click()
    expect(steps.locator("pre").first).to_contain_text(peering.cloud_id)
    screenshot(page, "peering-active-summary")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("aws_cloud")
def test_the_peering_form_fills_in_the_simulated_customer(page, owner, professional, settings):
    from playwright.sync_api import expect

    from deployments.models import Peering
    from deployments.peering import customer_side
    from deployments.peering.network import DEMO_CUSTOMER_KEY
    from deployments.tests.conftest import CUSTOMER_ACCOUNT
    from projects.tests.factories import PASSWORD

    # What deployments.cloudsim records on `make run`.
    vpc_id = customer_side.ensure_customer_vpc(CUSTOMER_ACCOUNT, "us-east-1", CUSTOMER_CIDR)
    settings.PEERING_PLATFORM_NETWORKS = {**settings.PEERING_PLATFORM_NETWORKS, DEMO_CUSTOMER_KEY: {
        "account_id": CUSTOMER_ACCOUNT, "region": "us-east-1", "cidr": CUSTOMER_CIDR, "vpc_id": vpc_id}}

    log_in(page, "ada@example.com", PASSWORD)
    page.goto(f"/console/deployments/{professional.id}/peerings/new")
    expect(page.get_by_label("VPC id")).to_have_value("")
    expect(page.get_by_role("note")).to_contain_text(vpc_id)
    page.get_by_role("link", name="Fill in the simulated customer").click()
    expect(page.get_by_label("AWS account id")).to_have_value(CUSTOMER_ACCOUNT)
    expect(page.get_by_label("VPC id")).to_have_value(vpc_id)
    expect(page.get_by_label("Your network (CIDR)")).to_have_value(CUSTOMER_CIDR)
    screenshot(page, "peering-simulated-fill")
    page.get_by_role("button", name="Request peering").click()
    expect(page.get_by_text("Peering requested.")).to_be_visible()

    peering = _converge(Peering.objects.get().id)
    assert peering.status == "pending_acceptance", peering.status_reason  # not InvalidVpcID.NotFound
    page.reload()
    expect(page.locator("pre").first).to_contain_text(f"--vpc-peering-connection-id {peering.cloud_id}")


def _open_channel_form(page):
    from projects.tests.factories import PASSWORD

    log_in(page, "ada@example.com", PASSWORD)
    page.goto("/console/alerts/channels")
    page.get_by_role("link", name="Add channel").first.click()


@pytest.mark.django_db(transaction=True)
def test_the_channel_form_shows_the_chosen_types_fields_and_copies_the_secret(page, owner, settings):
    from playwright.sync_api import expect

    settings.OUTBOUND_HTTP_ALLOW_LOOPBACK = True  # the URL is only checked, never sent to here
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    _open_channel_form(page)
    recipients, url, routing_key = (page.get_by_label(name) for name in ("Recipients", "URL", "Routing key"))
    page.get_by_label("Type").select_option("email")
    expect(recipients).to_be_visible()
    expect(url).to_be_hidden()
    expect(routing_key).to_be_hidden()
    page.get_by_label("Type").select_option("pagerduty")
    expect(routing_key).to_be_visible()
    expect(recipients).to_be_hidden()
    page.get_by_label("Type").select_option("webhook")
    expect(url).to_be_visible()
    expect(page.get_by_label("Headers")).to_be_visible()
    expect(routing_key).to_be_hidden()
    screenshot(page, "alerts-channel-form-webhook")

    page.get_by_label("Name").fill("ops-hook")
    url.fill("http://127.0.0.1:9/hooks/mqcloud")
    page.get_by_role("button", name="Add channel").click()
    secret = page.locator("#new-channel-secret")
    expect(secret).to_have_text(re.compile(r"^whsec_\S+$"))
    page.locator("#flash").get_by_role("button", name="Copy").click()
    expect(page.locator("#flash").get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == secret.inner_text()


@pytest.mark.django_db(transaction=True)
def test_the_channel_form_works_without_javascript(browser_without_javascript, owner):
    from playwright.sync_api import expect

    page = browser_without_javascript
    _open_channel_form(page)
    # Every type's fields show; the server uses the chosen type's.
    for name in ("Recipients", "Routing key", "URL"):
        expect(page.get_by_label(name)).to_be_visible()
    page.get_by_label("Name").fill("team")
    page.get_by_label("Type").select_option("email")
    page.get_by_label("Recipients").fill("team@example.com")
    page.get_by_role("button", name="Add channel").click()
    expect(page.get_by_text("Channel team created.")).to_be_visible()


@pytest.fixture
def browser_without_javascript(page, live_server):
    """A second page, in a context of the same browser that runs no scripts."""
    context = page.context.browser.new_context(base_url=live_server.url, java_script_enabled=False)
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


@pytest.mark.django_db(transaction=True)
def test_a_private_url_is_refused_in_one_clear_sentence(page, owner):
    from playwright.sync_api import expect

    _open_channel_form(page)
    page.get_by_label("Name").fill("local")
    page.get_by_label("Type").select_option("webhook")
    page.get_by_label("URL").fill("http://127.0.0.1/hook")
    page.get_by_role("button", name="Add channel").click()
    expect(page.locator(".form-error")).to_have_text(
        "url: 127.0.0.1 is a loopback address; requests go only to public addresses.")
    screenshot(page, "alerts-channel-private-url")


@pytest.mark.django_db(transaction=True)
def test_the_invitation_form_defaults_to_developer_and_explains_roles_and_expiry(page, owner, settings):
    from playwright.sync_api import expect

    from projects.models import Invitation
    from projects.tests.factories import PASSWORD, UserFactory

    settings.INVITATION_TTL_SECONDS = 7 * 24 * 3600
    UserFactory(email="grace@example.com")  # has an account already
    log_in(page, "ada@example.com", PASSWORD)
    page.goto("/console/members/invite")
    expect(page.get_by_text("it expires after 7 days.")).to_be_visible()
    expect(page.get_by_label("Role")).to_have_value("developer")
    roles = page.locator(".role-line")
    expect(roles).to_have_count(5)
    expect(roles.filter(has_text="Developer")).to_contain_text("Projects, deployments and their own API keys")
    expect(roles.filter(has_text="Viewer")).to_contain_text("Reads everything, changes nothing.")
    screenshot(page, "invitation-form")
    page.get_by_label("Email").fill("grace@example.com")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_text("Invitation sent to grace@example.com.")).to_be_visible()
    invitation = Invitation.objects.get(email="grace@example.com")
    assert invitation.role == "developer"

    page.get_by_role("button", name="Log out").click()
    page.goto(f"/console/invitations/{invitation.token_encrypted}")
    field = page.locator(".field", has=page.get_by_label("Your password"))
    expect(field).to_contain_text("not needed once you are logged in with it")
    expect(field).not_to_contain_text("optional")


@pytest.mark.django_db(transaction=True)
def test_alert_rule_metrics_are_named_with_units(page, owner):
    from playwright.sync_api import expect

    from projects.tests.factories import PASSWORD, ProjectFactory

    ProjectFactory(organization=owner.organization, name="telemetry")
    log_in(page, "ada@example.com", PASSWORD)
    page.goto("/console/alerts/rules")
    page.get_by_role("link", name="Create rule").first.click()
    page.get_by_label("Name").fill("crowded")
    page.get_by_label("Project").select_option(label="telemetry")
    page.get_by_label("Metric").select_option(label="Connections used (% of the spec's limit)")
    page.get_by_label("Threshold").fill("80")
    expect(page.locator("#id_threshold ~ .help")).to_contain_text("80 for 80 % of the spec's limit")
    page.get_by_role("button", name="Create rule").click()
    row = page.locator("#rules-table tbody tr", has_text="crowded")
    expect(row).to_contain_text("Connections used > 80 % of the spec's limit for 300 s")
    expect(row.locator(".rule-condition")).to_have_attribute("title", "API: connections_pct > 80")
    screenshot(page, "alerts-rules-in-words")
