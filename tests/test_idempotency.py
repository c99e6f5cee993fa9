"""``Idempotency-Key`` on POST: a repeat with the same body replays the first response; another body is 422."""

from __future__ import annotations

import pytest
from django.db import connection

from controlplane.models import IdempotencyRecord
from projects.models import ApiKey, Project
from projects.roles import Role
from projects.tests.factories import OrganizationFactory, make_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def org_client(make_client):
    org = OrganizationFactory()
    _, secret = make_api_key(org, role=Role.OWNER)
    return org, make_client(secret)


def post(client, path, body, key):
    return client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_same_key_and_body_replays_the_first_response(org_client):
    org, client = org_client
    first = post(client, "/api/v1/projects", {"name": "fleet"}, "k-1")
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first
    second = post(client, "/api/v1/projects", {"name": "fleet"}, "k-1")
    assert second.status_code == 201
    assert second["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert Project.objects.filter(organization=org, name="fleet").count() == 1


def test_same_key_other_body_is_422(org_client):
    org, client = org_client
    assert post(client, "/api/v1/projects", {"name": "fleet"}, "k-2").status_code == 201
    response = post(client, "/api/v1/projects", {"name": "other"}, "k-2")
    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    assert not Project.objects.filter(organization=org, name="other").exists()


def test_without_a_key_nothing_is_replayed(org_client):
    _, client = org_client
    assert client.post("/api/v1/projects", {"name": "a"}, format="json").status_code == 201
    assert client.post("/api/v1/projects", {"name": "a"}, format="json").status_code == 409


def test_keys_are_scoped_per_credential(org_client, make_client):
    org, client = org_client
    _, other_secret = make_api_key(org, role=Role.OWNER)
    other = make_client(other_secret)
    assert post(client, "/api/v1/projects", {"name": "mine"}, "shared-key").status_code == 201
    response = post(other, "/api/v1/projects", {"name": "theirs"}, "shared-key")
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response


def test_api_key_replay_returns_the_same_secret_but_stores_it_encrypted(org_client):
    org, client = org_client
    body = {"name": "ci", "role": "viewer"}
    first = post(client, "/api/v1/api-keys", body, "key-create")
    assert first.status_code == 201
    secret = first.json()["key"]
    replay = post(client, "/api/v1/api-keys", body, "key-create")
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json()["key"] == secret
    assert ApiKey.objects.filter(organization=org, name="ci").count() == 1
    record = IdempotencyRecord.objects.get(key="key-create")
    assert secret in record.response_body  # decrypted on read
    with connection.cursor() as cursor:
        cursor.execute("SELECT response_body FROM controlplane_idempotencyrecord WHERE id = %s", [record.pk])
        raw = cursor.fetchone()[0]
    assert secret not in raw
    assert secret.split("_", 2)[2] not in raw
    assert "ci" not in raw or raw.startswith("gAAAA")  # a Fernet token


def test_replayed_error_is_still_a_problem(org_client):
    _, client = org_client
    assert client.post("/api/v1/projects", {"name": "dup"}, format="json").status_code == 201
    first = post(client, "/api/v1/projects", {"name": "dup"}, "k-err")
    assert first.status_code == 409
    replay = post(client, "/api/v1/projects", {"name": "dup"}, "k-err")
    assert replay.status_code == 409
    assert replay["Idempotent-Replayed"] == "true"
    assert replay["Content-Type"] == "application/problem+json"
    assert replay.json() == first.json()


@pytest.mark.parametrize("key", ["", "x" * 256, "nul\x00byte", "tab\there", "caf\u00e9"])
def test_bad_key_is_400(org_client, key):
    org, client = org_client
    response = post(client, "/api/v1/projects", {"name": "k"}, key)
    assert response.status_code == 400
    assert not Project.objects.filter(organization=org, name="k").exists()


def test_signup_is_idempotent_too(anon):
    body = {"email": "ada@example.com", "password": "a-long-enough-passphrase", "organization_name": "Acme",
            "site": "global", "country": "DE"}
    first = anon.post("/api/v1/signup", body, format="json", HTTP_IDEMPOTENCY_KEY="signup-1")
    second = anon.post("/api/v1/signup", body, format="json", HTTP_IDEMPOTENCY_KEY="signup-1")
    assert first.status_code == second.status_code == 201
    assert second["Idempotent-Replayed"] == "true"
    assert first.json() == second.json()
