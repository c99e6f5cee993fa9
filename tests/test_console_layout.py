"""Issue 14, items 8, 11 and 12 and its "done when": every console and ops page, found in the URLconf, at 390 and
1366 px without horizontal overflow and without a serious or critical axe-core violation; field errors next to
their fields; the metrics card after a scale and while stopped.

One Chromium for the module (launching one per test would cost a second each); one context per test. axe-core
comes from ``bin/ensure_axe.sh`` (a prerequisite of ``make test``) and is loaded into every page of the sweep by an
init script, registered once: ``add_script_tag`` sent its 550 KB to the browser again for each page (a quarter of
a second a page, a quarter of the sweep).
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pyotp
import pytest

from tests.browser import BROWSER_MARKS, CHROMIUM, screenshot

pytestmark = BROWSER_MARKS

AXE = Path(__file__).resolve().parent.parent / ".tools" / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = (390, 1366)
LONG_HOST = "fleet-telemetry-eu-central-production-01"
OPS_PASSWORD = "an-operator-passphrase"

# Document wider than the viewport, or an element sticking out of its card (the offending elements named). A
# box that scrolls (a wide table in .card-flush at 390 px) may be wider inside, except at desktop widths, where
# nothing may be cut off; hidden things (aria-hidden, .visually-hidden) do not count.
OVERFLOW_JS = """(desktop) => {
  const out = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > window.innerWidth) out.push(`document ${doc.scrollWidth}px > viewport ${window.innerWidth}px`);
  const describe = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
    + (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
  const hidden = (el) => el.closest('[aria-hidden="true"], .visually-hidden, [hidden]');
  const scrolls = (el) => getComputedStyle(el).overflowX !== 'visible';
  for (const card of document.querySelectorAll('.card, .module, main')) {
    const box = card.getBoundingClientRect();
    if (!box.width || hidden(card)) continue;
    if (scrolls(card)) {
      if (desktop && card.scrollWidth > card.clientWidth + 1)
        out.push(`${describe(card)} scrolls (${card.scrollWidth}px in ${card.clientWidth}px)`);
      continue;
    }
    for (const el of card.querySelectorAll('*')) {
      const r = el.getBoundingClientRect();
      if (!r.width || hidden(el) || getComputedStyle(el).position === 'fixed') continue;
      let scroller = el.parentElement;
      while (scroller && scroller !== card && !scrolls(scroller)) scroller = scroller.parentElement;
      if (scroller && scroller !== card) {
        if (desktop && scroller.scrollWidth > scroller.clientWidth + 1 && !scroller.matches('pre'))
          out.push(`${describe(scroller)} in ${describe(card)} scrolls `
                   + `(${scroller.scrollWidth}px in ${scroller.clientWidth}px)`);
        continue;
      }
      if (r.right > box.right + 1 || r.left < box.left - 1) {
        out.push(`${describe(el)} (${Math.round(r.left)}..${Math.round(r.right)}) outside ${describe(card)} `
                 + `(${Math.round(box.left)}..${Math.round(box.right)})`);
        break;
      }
    }
  }
  // A box that scrolls sideways can be scrolled from the keyboard: it takes the focus or holds something that does
  // (axe's scrollable-region-focusable, checked here at every width since axe runs at desktop width only).
  const focusable = 'a[href], button, input, select, textarea, [tabindex]:not([tabindex="-1"])';
  for (const el of document.querySelectorAll('body *')) {
    if (el.scrollWidth <= el.clientWidth + 1 || !['auto', 'scroll'].includes(getComputedStyle(el).overflowX)) continue;
    if (!el.matches('[tabindex]:not([tabindex="-1"])') && !el.querySelector(focusable))
      out.push(`${describe(el)} scrolls but cannot take the focus`);
  }
  // A Copy button never lies over the text it copies.
  for (const button of document.querySelectorAll('.copy-btn')) {
    const source = button.dataset.copyFrom ? document.getElementById(button.dataset.copyFrom)
                                           : button.closest('tr, div').querySelector('pre, code');
    if (!source || !source.getBoundingClientRect().width) continue;
    const a = button.getBoundingClientRect(), b = source.getBoundingClientRect();
    if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom)
      out.push(`copy button over ${describe(source)}`);
  }
  return [...new Set(out)];
}"""

AXE_JS = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | ')}`);
}"""


@pytest.fixture(scope="module")
def browser(django_db_setup):
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API runs an event loop in this thread for the whole module; Django would otherwise
    # refuse ORM calls here.
    with pytest.MonkeyPatch.context() as patch, sync_api.sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser, live_server):
    from django.db import connections

    context = browser.new_context(base_url=live_server.url, viewport={"width": 1366, "height": 900})
    context.set_default_timeout(10_000)
    try:
        yield context
    finally:
        context.close()
        connections.close_all()  # see tests/browser.py: the test database could not be dropped otherwise


def _log_in(page, email: str, password: str, *, ops: bool = False) -> None:
    page.goto("/ops/login/" if ops else "/console/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    if ops:  # every operator has two-factor login (projects/ops_site.py)
        from projects.models import TwoFactorDevice

        secret = TwoFactorDevice.objects.get(user__email=email).secret
        page.get_by_label("Two-factor code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login" not in url)


def _samples(deployment, at, *, connections: float, pct: float) -> None:
    from alerts.models import PUBLIC_METRICS, MetricSample

    values = dict.fromkeys(PUBLIC_METRICS, 0.0) | {"connections": connections, "connections_pct": pct,
                                                     "messages_in_rate": 12.5, "messages_out_rate": 30.0}
    MetricSample.objects.bulk_create(
        MetricSample(organization_id=deployment.organization_id, deployment=deployment, metric=metric, value=value,
                     at=at) for metric, value in values.items())


def _world():
    """Something on every page: what a busy organization has, and an operator."""
    from datetime import time as dt_time

    from django.utils import timezone

    from alerts.tests.factories import AlertChannelFactory, AlertFactory, AlertRuleFactory, NotificationFactory
    from billing.models import InvoiceLine
    from billing.tests.factories import BudgetFactory, InvoiceFactory, record_event
    from deployments.models import HttpAuthConfig, MaintenanceExclusion, MaintenanceWindow, Spec
    from deployments.mqtt_access.services import mqtt_user_create
    from deployments.tests.factories import DeploymentFactory, PeeringFactory
    from projects.models import ConsoleSession
    from projects.tenancy import Principal
    from projects.tests.factories import (
        ApiKeyFactory,
        AuditEventFactory,
        InvitationFactory,
        MembershipFactory,
        ProjectFactory,
        operator_user,
    )

    now = timezone.now()
    owner = MembershipFactory(user__email="ada@example.com", organization__name="Analytical Engines")
    org = owner.organization
    MembershipFactory(organization=org, user__email="grace.hopper.with.a.long.address@example.com", role="developer")
    project = ProjectFactory(organization=org, name="telemetry")
    deployment = DeploymentFactory(organization=org, project=project, name=LONG_HOST,
                                   spec=Spec.objects.get(id="pro-1k"), created_at=now - timedelta(days=2))
    record_event(deployment, "running", now - timedelta(days=2))
    for minutes in (50, 20, 1):
        _samples(deployment, now - timedelta(minutes=minutes), connections=330, pct=33.0)
    HttpAuthConfig.objects.create(
        organization=org, deployment=deployment, authn_url="https://auth.example.com/mqtt/authenticate/" + "x" * 60,
        authz_url="https://auth.example.com/mqtt/authorize", last_tests={
            "authentication": {"decision": "allow", "status_code": 200, "latency_ms": 12, "error": "",
                               "tested_at": now.isoformat()},
            "authorization": {"decision": "error", "status_code": 503, "latency_ms": 5000,
                              "error": "The auth service answered 503 Service Unavailable " * 3,
                              "tested_at": now.isoformat()}})
    peering = PeeringFactory(organization=org, deployment=deployment, status="failed",
                             status_reason="AWS: rejected by the owner of the accepter VPC")
    channel = AlertChannelFactory(organization=org, name="on-call")
    rule = AlertRuleFactory(organization=org, project=project, name="busy brokers")
    AlertFactory(organization=org, rule=rule, deployment=deployment)
    NotificationFactory(organization=org, channel=channel, status="failed")
    budget = BudgetFactory(organization=org)
    invoice = InvoiceFactory(organization=org, number="MQ-GLOBAL-2026-000042")
    InvoiceLine.objects.create(invoice=invoice, position=1, description=f"{LONG_HOST} pro-1k, November 2026",
                               quantity=Decimal("720"), unit="h", unit_price=Decimal("0.1340"),
                               amount=Decimal("96.48"))
    invitation = InvitationFactory(organization=org, email="new.colleague@example.com")
    api_key = ApiKeyFactory(organization=org, name="ci deploys")
    AuditEventFactory(organization=org, target_id=project.id)
    # A second console session (a phone, a long IPv6 address): the sessions page shows a row to end and its button.
    ConsoleSession.objects.create(
        user=owner.user, session_key="layout-phone", device="Mobile Safari 17 on iOS (iPhone)",
        ip="2001:db8:ffff:ffff:ffff:ffff:ffff:fffe",
        user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)")
    mqtt_user, _ = mqtt_user_create(principal=Principal.for_membership(owner), deployment=deployment,
                                    username="sensor-gateway-0001")
    # A project window in a far time zone and exclusions: the maintenance pages show occurrences and lists.
    MaintenanceWindow.objects.create(organization=org, project=project, weekday=6, start_time=dt_time(2, 30),
                                     length_minutes=240, time_zone="America/Argentina/ComodRivadavia")
    MaintenanceExclusion.objects.create(organization=org, deployment=deployment, start_date=now.date(),
                                        end_date=now.date() + timedelta(days=59), reason="retail freeze " * 8)
    operator_user("ops@example.com", OPS_PASSWORD)
    return {"user_id": mqtt_user.id,
        "project_id": project.id, "member_id": owner.id, "deployment_id": deployment.id, "peering_id": peering.id,
        "channel_id": channel.id, "rule_id": rule.id, "budget_id": budget.id, "invoice_id": invoice.id,
        "token": invitation.token_encrypted, "invitation_id": invitation.id, "api_key_id": api_key.id,
    }


def _console_pages(ids: dict) -> tuple[list[str], list[str]]:
    """Every GET page of the console from its URLconf: (pages behind the login, public pages). htmx fragments
    (templates named ``_*``) are left out: they are checked inside the pages that load them."""
    from django.urls import reverse

    from controlplane import console_urls
    from projects.console.base import OrganizationConsoleView

    by_url_name = {"invitation-revoke": "invitation_id", "api-key-revoke": "api_key_id",
                   "api-key-created": "api_key_id", "member-remove": "member_id"}
    private, public = [], []
    for pattern in console_urls.urlpatterns:
        view = getattr(pattern.callback, "view_class", None)
        if view is None or not hasattr(view, "get") or Path(view.template_name or "x").name.startswith("_"):
            continue
        kwargs = {name: ids[by_url_name.get(pattern.name, name)] for name in pattern.pattern.converters}
        url = reverse(f"console:{pattern.name}", kwargs=kwargs)
        (private if issubclass(view, OrganizationConsoleView) else public).append(url)
    return private, public


def _ops_pages(ids: dict) -> list[str]:
    """The ops site: its index, every model's list and the pages added to it (overview, outbox)."""
    from django.contrib import admin
    from django.urls import reverse

    pages = [reverse("admin:index"), reverse("ops-overview"), reverse("ops-outbox")]
    for model in admin.site._registry:
        pages.append(reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"))
    # A change page with the deployment's inlines (events, HTTP auth), the widest the ops site has.
    pages.append(reverse("admin:deployments_deployment_change", args=[ids["deployment_id"]]))
    return pages


def _check(page, url: str | None, problems: list[str], *, axe: bool = True) -> None:
    """Desktop first, then the same page narrowed to a phone (a resize relays it out as a load would). axe-core
    runs at desktop width only: a second run at 390 px found nothing new and cost a quarter of the test; the one
    rule the width changes (scrollable regions) is checked by OVERFLOW_JS at both widths. ``url`` None: the page
    the browser is on (the answer to a POST). axe-core is in the page already (``_with_axe``)."""
    page.set_viewport_size({"width": WIDTHS[-1], "height": 900})
    if url is None:
        url = page.url
    else:
        page.goto(url)
    for width in reversed(WIDTHS):
        if width != WIDTHS[-1]:
            page.set_viewport_size({"width": width, "height": 900})
            page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
        found = page.evaluate(OVERFLOW_JS, width >= 1366)
        if axe and width >= 1366:
            found += page.evaluate(AXE_JS)
        problems.extend(f"{url} @{width}px: {problem}" for problem in found)


def _with_axe(page):
    """``page``, with axe-core evaluated in every document it loads from now on."""
    page.add_init_script(path=str(AXE))
    return page


def _check_two_factor_states(page, problems: list[str]) -> None:
    """The two-factor pages beyond the "off" state the URLconf sweep sees: the QR code, the recovery codes (the
    answer to a POST), "on", and the login's code step."""
    import pyotp

    from projects.tests.factories import PASSWORD

    page.goto("/console/account/two-factor")
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_role("button", name="Set up two-factor login").click()
    _check(page, "/console/account/two-factor", problems)
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    page.get_by_label("Code", exact=True).fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on two-factor login").click()
    page.locator("#recovery-codes").wait_for()
    _check(page, None, problems)
    _check(page, "/console/account/two-factor", problems)
    page.context.clear_cookies()
    page.goto("/console/login")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/console/login/two-factor")
    _check(page, None, problems)


@pytest.mark.django_db(transaction=True)
def test_every_console_and_ops_page_fits_390_and_1366_px_and_passes_axe(context):
    from projects.tests.factories import PASSWORD

    if not AXE.exists():
        pytest.skip("needs axe-core in .tools/ (bin/ensure_axe.sh, run by make test)")
    ids = _world()
    private, public = _console_pages(ids)
    ops = _ops_pages(ids)
    assert len(private) > 30 and len(public) >= 4 and len(ops) > 20, (private, public, ops)
    problems: list[str] = []
    page = _with_axe(context.new_page())
    for url in public:
        _check(page, url, problems)
    _log_in(page, "ada@example.com", PASSWORD)
    for url in private:
        _check(page, url, problems)
    page.goto(f"/console/deployments/{ids['deployment_id']}")
    screenshot(page, "layout-deployment-390")
    _check_two_factor_states(page, problems)
    _log_in(page, "ops@example.com", OPS_PASSWORD, ops=True)
    # The ops lists are one Django template over different columns: each is checked for overflow, axe reads the
    # template once (on the first list) besides the other ops pages; that halves the ops site's share of the time.
    changelists = [url for url in ops if url.count("/") == 4]
    for url in ops:
        _check(page, url, problems, axe=url not in changelists[1:])
    assert not problems, "\n".join(problems)


@pytest.mark.django_db(transaction=True)
def test_field_errors_sit_by_their_fields_all_in_one_pass_and_a_skip_link_leads_to_the_content(context):
    """Item 8: the create-deployment form sent empty says what is wrong with each field at once, next to it and
    tied to it for screen readers; the first Tab reaches a skip link."""
    from playwright.sync_api import expect

    from projects.tests.factories import PASSWORD, MembershipFactory, ProjectFactory

    owner = MembershipFactory(user__email="ada@example.com")
    ProjectFactory(organization=owner.organization, name="telemetry")
    page = context.new_page()
    _log_in(page, "ada@example.com", PASSWORD)
    page.goto("/console/deployments/new")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    skip.press("Enter")
    expect(page).to_have_url(re.compile("#main$"))

    page.get_by_role("button", name="Create deployment").click()
    for label in ("Name", "Region"):
        control = page.get_by_label(label, exact=True)
        expect(control).to_have_attribute("aria-invalid", "true")
        described = control.get_attribute("aria-describedby").split()
        error = page.locator(f"#{described[-1]}")
        expect(error).to_have_class("error")
        expect(error).to_contain_text("required")
        # Right under its own field, not in a banner naming the field.
        expect(page.locator(".field", has=control).locator(".error")).to_have_count(1)
    expect(page.locator("#size-title ~ .error")).to_have_text("Choose a size.")  # the same pass
    expect(page.locator(".form-errors")).to_have_count(0)


@pytest.mark.django_db(transaction=True)
def test_the_metrics_card_waits_for_a_sample_at_the_new_size_and_says_stopped(context):
    """Item 12 on the deployment page: after a scale the old sample's "33% of 1000" is not shown as the new
    size's; stopped, no live numbers."""
    from django.utils import timezone
    from playwright.sync_api import expect

    from deployments.models import DeploymentEvent, Spec
    from deployments.tests.factories import DeploymentFactory
    from projects.tests.factories import PASSWORD, MembershipFactory

    owner = MembershipFactory(user__email="ada@example.com")
    now = timezone.now()
    deployment = DeploymentFactory(organization=owner.organization, spec=Spec.objects.get(id="basic-5k"))
    _samples(deployment, now - timedelta(minutes=5), connections=330, pct=33.0)
    DeploymentEvent.objects.create(organization_id=deployment.organization_id, deployment=deployment,
                                   from_status="scaling", to_status="running", spec_id="basic-5k",
                                   created_at=now - timedelta(minutes=1))
    page = context.new_page()
    _log_in(page, "ada@example.com", PASSWORD)
    page.goto(f"/console/deployments/{deployment.id}")
    card = page.locator("#metrics-card")
    expect(card.locator("#metrics-state")).to_contain_text("Waiting for the first sample at the new size")
    expect(card.get_by_role("meter")).to_have_count(0)  # no gauge from the old size's sample
    type(deployment).objects.filter(pk=deployment.pk).update(status="stopped")
    page.reload()
    expect(card.locator("#metrics-state")).to_contain_text("Stopped: no live numbers")
    expect(card.get_by_role("meter")).to_have_count(0)
    card.get_by_role("link", name="24h").click()
    expect(card.locator(".chart-axis").last).to_contain_text(now.strftime("%-d %b"))
