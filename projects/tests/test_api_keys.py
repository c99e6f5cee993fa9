"""API keys: shown once, stored hashed, usable until revoked or expired, last use recorded."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from projects.models import ApiKey, AuditEvent
from projects.roles import Role
from projects.tests.factories import OrganizationFactory, make_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(make_client):
    org = OrganizationFactory()
    _, secret = make_api_key(org, role=Role.OWNER)
    return org, make_client(secret)


def create_key(client, **body):
    response = client.post("/api/v1/api-keys", {"name": "ci", "role": "developer", **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_secret_is_shown_once_and_never_listed(owner):
    _, client = owner
    created = create_key(client)
    secret = created["key"]
    assert secret.startswith(created["prefix"] + "_")
    listed = client.get("/api/v1/api-keys").json()["results"]
    retrieved = client.get(f"/api/v1/api-keys/{created['id']}").json()
    for body in (*listed, retrieved):
        assert "key" not in body
        assert secret.split("_", 2)[2] not in str(body)
    assert retrieved["prefix"] == created["prefix"]


def test_key_is_stored_hashed(owner):
    _, client = owner
    created = create_key(client)
    secret_part = created["key"].split("_", 2)[2]
    key = ApiKey.objects.get(pk=created["id"])
    assert key.secret_hash == hashlib.sha256(secret_part.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM projects_apikey WHERE id = %s", [created["id"]])
        row = cursor.fetchone()
    assert secret_part not in " ".join(str(value) for value in row)
    assert secret_part not in str(list(AuditEvent.objects.filter(target_id=created["id"]).values()))


def test_new_key_works_with_its_role(owner, make_client):
    _, client = owner
    created = create_key(client, role="viewer")
    new_client = make_client(created["key"])
    assert new_client.get("/api/v1/projects").status_code == 200
    assert new_client.post("/api/v1/projects", {"name": "x"}, format="json").status_code == 403


def test_revoked_key_is_401_at_once(owner, make_client):
    _, client = owner
    created = create_key(client)
    new_client = make_client(created["key"])
    assert new_client.get("/api/v1/organization").status_code == 200
    assert client.delete(f"/api/v1/api-keys/{created['id']}").status_code == 204
    response = new_client.get("/api/v1/organization")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    revoked = client.get(f"/api/v1/api-keys/{created['id']}").json()
    assert revoked["revoked_at"] is not None
    # Revoking twice is harmless and not audited twice.
    assert client.delete(f"/api/v1/api-keys/{created['id']}").status_code == 204
    assert AuditEvent.objects.filter(action="api_key.revoke", target_id=created["id"]).count() == 1


def test_key_expires(owner, make_client):
    _, client = owner
    expires_at = timezone.now() + timedelta(hours=1)
    created = create_key(client, expires_at=expires_at.isoformat())
    new_client = make_client(created["key"])
    assert new_client.get("/api/v1/organization").status_code == 200
    with time_machine.travel(expires_at - timedelta(seconds=1), tick=False):
        assert new_client.get("/api/v1/organization").status_code == 200
    with time_machine.travel(expires_at + timedelta(seconds=1), tick=False):
        assert new_client.get("/api/v1/organization").status_code == 401


def test_expiry_in_the_past_is_400(owner):
    _, client = owner
    past = (timezone.now() - timedelta(minutes=1)).isoformat()
    response = client.post("/api/v1/api-keys", {"name": "old", "role": "viewer", "expires_at": past}, format="json")
    assert response.status_code == 400
    assert "expires_at" in response.json()["errors"]


def test_last_use_is_recorded_at_most_once_a_minute(owner, make_client):
    _, client = owner
    created = create_key(client)
    assert created["last_used_at"] is None
    new_client = make_client(created["key"])
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        new_client.get("/api/v1/organization", REMOTE_ADDR="203.0.113.7")
    key = ApiKey.objects.get(pk=created["id"])
    assert key.last_used_at == start
    assert key.last_used_ip == "203.0.113.7"
    with time_machine.travel(start + timedelta(seconds=30), tick=False):
        new_client.get("/api/v1/organization")
    key.refresh_from_db()
    assert key.last_used_at == start
    with time_machine.travel(start + timedelta(minutes=2), tick=False):
        new_client.get("/api/v1/organization")
    key.refresh_from_db()
    assert key.last_used_at == start + timedelta(minutes=2)


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Bearer mqc_", "Bearer mqc_abc", "Bearer mqc_abc_",
                                    "Bearer nope_abc_def", "Basic dXNlcjpwYXNz"])
def test_malformed_authorization_is_401(anon, header):
    response = anon.get("/api/v1/projects", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"


def test_right_prefix_wrong_secret_is_401(make_client):
    org = OrganizationFactory()
    key, secret = make_api_key(org)
    assert make_client(secret).get("/api/v1/organization").status_code == 200
    assert make_client(f"mqc_{key.prefix}_wrong-secret").get("/api/v1/organization").status_code == 401


def test_key_of_another_organization_cannot_pick_this_one(make_client):
    org, other = OrganizationFactory(), OrganizationFactory()
    _, secret = make_api_key(org)
    response = make_client(secret).get("/api/v1/organization", HTTP_X_ORGANIZATION=other.id)
    assert response.status_code == 404
