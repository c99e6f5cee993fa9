"""Every API error is an RFC 9457 problem document."""

from __future__ import annotations

import pytest
from django.test import override_settings

from projects.roles import Role
from projects.tests.factories import OrganizationFactory, ProjectFactory, make_api_key

pytestmark = pytest.mark.django_db


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == status
    assert body["type"].startswith("https://")
    assert body["title"] and body["detail"]
    return body


@pytest.fixture
def owner(make_client):
    org = OrganizationFactory()
    _, secret = make_api_key(org, role=Role.OWNER)
    return org, make_client(secret)


def test_400(owner):
    _, client = owner
    body = assert_problem(client.post("/api/v1/projects", {"name": ""}, format="json"), 400)
    assert "name" in body["errors"]
    assert_problem(client.post("/api/v1/projects", data="{", content_type="application/json"), 400)


def test_401(anon):
    assert_problem(anon.get("/api/v1/projects"), 401)


def test_403(make_client):
    _, secret = make_api_key(OrganizationFactory(), role=Role.VIEWER)
    assert_problem(make_client(secret).post("/api/v1/projects", {"name": "x"}, format="json"), 403)


def test_404_object_and_unknown_url(owner, anon):
    _, client = owner
    assert_problem(client.get("/api/v1/projects/prj_zzzzzzzzzzzzzzzzzzzz"), 404)
    for path in ("/api/v1/nope", "/api/v1/projects/NOT-AN-ID", "/api/v1/projects/", "/api/v1/a/b/c"):
        assert_problem(client.get(path), 404)
        assert_problem(anon.get(path), 404)
        assert_problem(client.post(path, {}, format="json"), 404)


def test_404_for_unknown_url_also_with_debug(owner):
    _, client = owner
    with override_settings(DEBUG=True):
        assert_problem(client.get("/api/v1/nowhere"), 404)


def test_405(owner):
    org, client = owner
    project = ProjectFactory(organization=org)
    assert_problem(client.put(f"/api/v1/projects/{project.id}", {"name": "x"}, format="json"), 405)
    assert_problem(client.delete("/api/v1/projects"), 405)
    assert_problem(client.post("/api/v1/audit-events", {}, format="json"), 405)


def test_409(owner):
    _, client = owner
    assert client.post("/api/v1/projects", {"name": "dup"}, format="json").status_code == 201
    body = assert_problem(client.post("/api/v1/projects", {"name": "dup"}, format="json"), 409)
    assert "name" in body["errors"]


def test_415(owner):
    _, client = owner
    assert_problem(client.post("/api/v1/projects", data="name=x", content_type="application/x-www-form-urlencoded"),
                   415)


def test_422(owner):
    _, client = owner
    client.post("/api/v1/projects", {"name": "a"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert_problem(client.post("/api/v1/projects", {"name": "b"}, format="json", HTTP_IDEMPOTENCY_KEY="k"), 422)


def test_429(owner):
    _, client = owner
    with override_settings(API_RATE_LIMITS={"credential": "1/min", "ip": "100/min", "signup": "1/min"}):
        client.get("/api/v1/projects")
        response = client.get("/api/v1/projects")
    assert_problem(response, 429)
    assert int(response["Retry-After"]) >= 1


@pytest.mark.parametrize("header", ["Bearer mqc_ab\x00cd_secret", "Bearer mqc_abcd_se\x00cret",
                                    "Bearer mqc_\u00e9\u00e9_x"])
def test_control_characters_in_credentials_are_401_not_500(anon, header):
    assert_problem(anon.get("/api/v1/projects", HTTP_AUTHORIZATION=header), 401)


@pytest.mark.parametrize("org_header", ["org_\x00", "org_" + "x" * 300, "ORG_ABC", "\u00e9"])
def test_odd_organization_header_is_404_not_500(session_client, org_header):
    from projects.tests.factories import MembershipFactory

    member = MembershipFactory()
    assert_problem(session_client(member.user).get("/api/v1/organization", HTTP_X_ORGANIZATION=org_header), 404)


def test_control_characters_in_user_agent_do_not_break_writes(owner):
    org, client = owner
    response = client.post("/api/v1/projects", {"name": "ua"}, format="json", HTTP_USER_AGENT="curl\x00/8\x07")
    assert response.status_code == 201
    from projects.models import AuditEvent

    assert AuditEvent.objects.get(organization=org, action="project.create").user_agent == "curl/8"


# An entry that is no address is unknown (None), never the proxy's own address (REMOTE_ADDR, 127.0.0.1 here), which
# every client behind the proxy shares; a port the proxy wrote is dropped.
@pytest.mark.parametrize(("forwarded", "recorded"), [("203.0.113.9", "203.0.113.9"), ("not-an-ip", None),
                                                     ("203.0.113.9:4431", "203.0.113.9"),
                                                     ("1.2.3.4, 203.0.113.9", "203.0.113.9")])
def test_forwarded_for_behind_a_proxy(owner, settings, forwarded, recorded):
    from projects.models import AuditEvent

    org, client = owner
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    response = client.post("/api/v1/projects", {"name": "fwd"}, format="json", HTTP_X_FORWARDED_FOR=forwarded)
    assert response.status_code == 201
    assert AuditEvent.objects.get(organization=org, action="project.create").ip == recorded


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v1/projects/", "/api/v1/projects%0A"])
def test_a_write_to_an_unknown_path_is_404_not_a_csrf_refusal(method, path):
    from django.test import Client

    org = OrganizationFactory()
    _, secret = make_api_key(org, role=Role.OWNER)
    client = Client(enforce_csrf_checks=True)  # as a script sees the server: CSRF middleware on
    response = getattr(client, method)(path, data="{}", content_type="application/json",
                                       HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert_problem(response, 404)
