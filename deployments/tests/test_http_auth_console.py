"""The HTTP authentication page of the console: save, keep write-only headers, test, show slow results."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from deployments.models import HttpAuthConfig
from deployments.tests.factories import DeploymentFactory
from deployments.tests.http_auth_service import AuthService, serve_auth
from projects.roles import Role
from projects.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def auth_service() -> Iterator[AuthService]:
    with serve_auth() as service:
        yield service


def logged_in(role: str = Role.OWNER):
    member = MembershipFactory(role=role)
    client = Client()
    client.force_login(member.user)
    return client, DeploymentFactory(organization=member.organization)


def form_data(url: str, **overrides) -> dict:
    return {"enabled": "on", "authn_method": "post", "authn_url": url,
            "authn_headers": "Authorization: Bearer console-secret\nX-Extra: two",
            "authn_params": "username=${username}\npassword=${password}", "authn_timeout_ms": "2000",
            "authz_method": "post", "authz_timeout_ms": "5000"} | overrides


def page_url(deployment, suffix: str = "") -> str:
    return reverse(f"console:deployment-http-auth{suffix}", args=[deployment.id])


def test_save_then_the_page_shows_names_but_never_values(auth_service):
    client, deployment = logged_in()
    assert "Set up HTTP authentication" in client.get(reverse("console:deployment-detail",
                                                              args=[deployment.id])).content.decode()
    response = client.post(page_url(deployment), form_data(auth_service.url))
    assert response.status_code == 302, response.content.decode()[:2000]
    config = HttpAuthConfig.objects.get(deployment=deployment)
    assert json.loads(config.authn_headers) == {"Authorization": "Bearer console-secret", "X-Extra": "two"}
    body = client.get(page_url(deployment)).content.decode()
    assert "Authorization: •••" in body and "console-secret" not in body
    assert "username=${username}" in body
    # Saving again without retyping the headers keeps them; ticking "remove" drops them.
    client.post(page_url(deployment), form_data(auth_service.url, authn_headers=""))
    config.refresh_from_db()
    assert json.loads(config.authn_headers)["Authorization"] == "Bearer console-secret"
    client.post(page_url(deployment), form_data(auth_service.url, authn_headers="", authn_headers_clear="on"))
    config.refresh_from_db()
    assert json.loads(config.authn_headers) == {}


def test_refusals_show_on_the_form(auth_service):
    client, deployment = logged_in()
    response = client.post(page_url(deployment), form_data("http://10.0.0.1/auth"))
    assert response.status_code == 400
    assert "public address" in response.content.decode()
    response = client.post(page_url(deployment), form_data(auth_service.url, authn_params="u=${who}"))
    assert response.status_code == 400 and "${who}" in response.content.decode()
    response = client.post(page_url(deployment), form_data(auth_service.url, authn_headers="no separator"))
    assert response.status_code == 400 and "Line 1" in response.content.decode()
    assert not HttpAuthConfig.objects.exists()


def test_test_button_reports_the_decision_and_flags_slow_services(auth_service):
    client, deployment = logged_in()
    client.post(page_url(deployment), form_data(auth_service.url))
    auth_service.answer(401)
    response = client.post(page_url(deployment, "-test"), {"kind": "authentication", "username": "u",
                                                           "action": "publish"}, follow=True)
    body = response.content.decode()
    assert "Test authentication: deny (status 401" in body
    auth_service.answer(200)
    auth_service.delay_s = 1.05
    body = client.post(page_url(deployment, "-test"), {"kind": "authentication", "username": "u",
                                                       "action": "publish"}, follow=True).content.decode()
    assert "allow" in body and "latency-slow" in body and "(slow)" in body


def test_testing_a_url_inside_a_peering_is_refused_with_the_reason(auth_service):
    from deployments.tests.factories import PeeringFactory

    client, basic = logged_in()
    deployment = DeploymentFactory(organization=basic.organization, spec_id="pro-1k", target_spec_id="pro-1k",
                                   tier="professional")
    PeeringFactory(organization=deployment.organization, deployment=deployment, cidr="127.0.0.0/8", status="active")
    with override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=False):
        assert client.post(page_url(deployment), form_data(auth_service.url)).status_code == 302
        body = client.post(page_url(deployment, "-test"), {"kind": "authentication", "username": "u",
                                                           "action": "publish"}, follow=True).content.decode()
    assert "inside the deployment" in body and "MQTT client" in body
    assert auth_service.received == []


def test_viewer_sees_the_page_but_cannot_save_or_test(auth_service):
    client, deployment = logged_in(Role.VIEWER)
    assert client.get(page_url(deployment)).status_code == 200
    assert client.post(page_url(deployment), form_data(auth_service.url)).status_code == 403
    assert client.post(page_url(deployment, "-test"), {"kind": "authentication", "action": "publish"}).status_code \
        == 403
    assert not HttpAuthConfig.objects.exists()
