"""Issue 14, item 14, in a real browser: the HTTP authentication page says "applying" while the broker nodes
restart, "live" once every node runs the configuration, the rolling restart is in the deployment's lifecycle,
and the ops site says the same thing as the console.

A real Celery worker runs the repair and the rolling restart's watch against the simulated cluster."""

from __future__ import annotations

import pytest

from tests.browser import BROWSER_MARKS, log_in, screenshot
from tests.support import running_worker, simulated_cluster, wait_for

pytestmark = [*BROWSER_MARKS, pytest.mark.integration]


@pytest.fixture
def cluster():
    # Pods take a second to be ready, so the restart is long enough to be seen.
    with simulated_cluster(seed=14, ready_delay_s=1.0, poll_s=0.2) as simulated:
        yield simulated


@pytest.fixture
def auth_service():
    from deployments.tests.http_auth_service import serve_auth

    with serve_auth() as service:
        yield service


@pytest.mark.django_db(transaction=True)
def test_saving_http_auth_shows_the_rolling_restart_until_it_is_live_in_console_and_ops(page, cluster,
                                                                                       auth_service):
    from playwright.sync_api import expect

    from deployments import provisioning
    from deployments.services import catalog_sync
    from deployments.tests.factories import DeploymentFactory
    from k8s.services import observe_broker_cluster
    from projects.tests.factories import PASSWORD, MembershipFactory, operator_user

    catalog_sync()  # a transactional test starts from empty tables
    member = MembershipFactory(user__email="ada@example.com", organization__name="Analytical Engines")
    deployment = DeploymentFactory(organization=member.organization, name="fleet-eu")
    provisioning.repair(deployment.id)
    wait_for(lambda: observe_broker_cluster(region_id=deployment.region_id, namespace=deployment.namespace,
                                            name=provisioning.BROKER_NAME).rolled_out, "the first rollout")
    ops = operator_user("ops@example.com", "an-operator-passphrase")

    with running_worker():
        log_in(page, "ada@example.com", PASSWORD)
        page.goto(f"/console/deployments/{deployment.id}/http-auth")
        page.locator("input[name=authn_url]").fill(auth_service.url)
        page.get_by_role("button", name="Save").click()
        state = page.locator("#http-auth-state")
        expect(state).to_contain_text("Applying configuration 1: the broker nodes restart one at a time")
        screenshot(page, "http-auth-applying")
        # The notice follows the restart by itself, without a reload.
        expect(state).to_contain_text("Live: configuration 1 runs on every broker node.", timeout=40_000)
        screenshot(page, "http-auth-live")

        page.goto(f"/console/deployments/{deployment.id}")
        lifecycle = page.locator(".timeline")
        expect(lifecycle).to_contain_text("Rolling restart: the nodes restart one at a time to load HTTP "
                                          "authentication configuration 1")
        expect(lifecycle).to_contain_text("Rolling restart done: every node runs HTTP authentication configuration 1")

        # The ops site reads the same selector: live, and both generations agree.
        page.goto("/ops/login/")
        page.get_by_label("Email").fill("ops@example.com")
        page.get_by_label("Password").fill("an-operator-passphrase")
        page.get_by_label("Two-factor code").fill(ops.totp.now())
        page.get_by_role("button", name="Log in").click()
        page.goto(f"/ops/deployments/deployment/{deployment.id.replace('_', '_5F')}/change/")
        expect(page.locator("#http-auth-state")).to_have_text("Live: configuration 1 runs on every broker node.")
        fields = page.locator("fieldset")
        desired = fields.locator(".field-desired_generation .readonly").inner_text()
        applied = fields.locator(".field-applied_generation .readonly").inner_text()
        assert desired == applied
        expect(page.locator("#events-0")).to_be_visible()
        screenshot(page, "ops-deployment-http-auth")
