"""Rate limits per credential, per client IP and for signups; read from settings on every request."""

from __future__ import annotations

import pytest
from django.test import override_settings

from projects.roles import Role
from projects.tests.factories import MembershipFactory, OrganizationFactory, make_api_key

pytestmark = pytest.mark.django_db

GENEROUS = "1000/min"


def limits(**overrides):
    return override_settings(API_RATE_LIMITS={"credential": GENEROUS, "ip": GENEROUS, "signup": GENEROUS,
                                              **overrides})


def test_fourth_request_of_a_key_is_429(make_client):
    org = OrganizationFactory()
    _, secret = make_api_key(org)
    _, other_secret = make_api_key(org)
    client = make_client(secret)
    with limits(credential="3/min"):
        assert [client.get("/api/v1/projects").status_code for _ in range(3)] == [200, 200, 200]
        response = client.get("/api/v1/projects")
        assert response.status_code == 429
        assert 1 <= int(response["Retry-After"]) <= 60
        # Another key is counted on its own.
        assert make_client(other_secret).get("/api/v1/projects").status_code == 200


def test_session_user_is_limited_too(session_client):
    member = MembershipFactory(role=Role.VIEWER)
    client = session_client(member.user)
    with limits(credential="2/min"):
        assert client.get("/api/v1/organization").status_code == 200
        assert client.get("/api/v1/organization").status_code == 200
        assert client.get("/api/v1/organization").status_code == 429


def test_per_ip_limit_spans_credentials(make_client):
    org = OrganizationFactory()
    clients = [make_client(make_api_key(org)[1]) for _ in range(4)]
    with limits(ip="3/min"):
        statuses = [c.get("/api/v1/projects", REMOTE_ADDR="198.51.100.1").status_code for c in clients]
        assert statuses == [200, 200, 200, 429]
        assert clients[0].get("/api/v1/projects", REMOTE_ADDR="198.51.100.2").status_code == 200


def test_limits_change_without_restart(make_client):
    _, secret = make_api_key(OrganizationFactory())
    client = make_client(secret)
    with limits(credential="1/min"):
        client.get("/api/v1/projects")
        assert client.get("/api/v1/projects").status_code == 429
    with limits(credential="100/min"):
        assert client.get("/api/v1/projects").status_code == 200


def test_signup_limit(anon):
    def body(n):
        return {"email": f"u{n}@example.com", "password": "a-long-enough-passphrase", "organization_name": "Acme",
                "site": "global", "country": "DE"}

    with limits(signup="2/hour"):
        assert anon.post("/api/v1/signup", body(1), format="json").status_code == 201
        assert anon.post("/api/v1/signup", body(2), format="json").status_code == 201
        response = anon.post("/api/v1/signup", body(3), format="json")
        assert response.status_code == 429
        assert int(response["Retry-After"]) > 60
        assert anon.post("/api/v1/signup", body(4), format="json", REMOTE_ADDR="192.0.2.9").status_code == 201


def test_unauthenticated_callers_are_limited_per_ip(anon):
    with limits(ip="2/min"):
        assert anon.post("/api/v1/invitations/accept", {"token": "x"}, format="json").status_code == 404
        assert anon.post("/api/v1/invitations/accept", {"token": "x"}, format="json").status_code == 404
        assert anon.post("/api/v1/invitations/accept", {"token": "x"}, format="json").status_code == 429
