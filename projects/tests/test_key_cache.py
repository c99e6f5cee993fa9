"""API keys are resolved from a per-process cache (``projects.key_cache``, issue 15), and whatever changes a
key's rights takes effect on the very next request: revocation, the creator's role, limit, removal or
deactivation, the organization itself. Each change here is made the way another process would see it: through
the shared token only (the cache holds no per-process invalidation)."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from projects import key_cache
from projects.roles import Role
from projects.tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory, make_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(make_client, session_client):
    org = OrganizationFactory()
    owner = MembershipFactory(organization=org, role=Role.OWNER)
    developer = MembershipFactory(organization=org, role=Role.DEVELOPER)
    key, secret = make_api_key(org, role=Role.ADMIN, created_by=developer)
    return org, session_client(owner.user), developer, key, make_client(secret)


def _key_queries(client) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/v1/projects").status_code == 200
    return [q["sql"] for q in queries if 'FROM "projects_apikey"' in q["sql"]]


def test_a_cached_key_is_not_read_again_and_a_revoked_one_stops_at_once(team):
    org, owner, _, key, client = team
    assert _key_queries(client)  # first sight: read from the database
    assert _key_queries(client) == []  # then from the cache
    assert owner.delete(f"/api/v1/api-keys/{key.id}").status_code == 204
    assert client.get("/api/v1/projects").status_code == 401


def test_the_creators_new_role_and_limit_apply_at_once(team):
    org, owner, developer, key, client = team
    assert client.post("/api/v1/projects", {"name": "a"}, format="json").status_code == 201
    assert owner.patch(f"/api/v1/members/{developer.id}", {"role": Role.VIEWER}, format="json").status_code == 200
    assert client.post("/api/v1/projects", {"name": "b"}, format="json").status_code == 403

    visible = ProjectFactory(organization=org)
    assert len(client.get("/api/v1/projects").json()["results"]) == 2
    assert owner.patch(f"/api/v1/members/{developer.id}", {"projects": [visible.id]},
                       format="json").status_code == 200
    assert [p["id"] for p in client.get("/api/v1/projects").json()["results"]] == [visible.id]


def test_a_removed_or_deactivated_creator_takes_the_key_along(team, make_client):
    org, owner, developer, key, client = team
    assert client.get("/api/v1/projects").status_code == 200
    developer.user.is_active = False
    developer.user.save()
    assert client.get("/api/v1/projects").status_code == 401

    other = MembershipFactory(organization=org, role=Role.DEVELOPER)
    _, secret = make_api_key(org, role=Role.DEVELOPER, created_by=other)
    second = make_client(secret)
    assert second.get("/api/v1/projects").status_code == 200
    assert owner.delete(f"/api/v1/members/{other.id}").status_code == 204
    assert second.get("/api/v1/projects").status_code == 401


def test_the_organization_is_never_stale(make_client):
    org = OrganizationFactory(name="Before")
    _, secret = make_api_key(org, role=Role.OWNER)
    client = make_client(secret)
    assert client.get("/api/v1/organization").json()["name"] == "Before"
    assert client.patch("/api/v1/organization", {"name": "After"}, format="json").status_code == 200
    assert client.get("/api/v1/organization").json()["name"] == "After"


def test_a_request_cannot_change_the_cached_instances(team):
    org, _, _, key, client = team
    assert client.get("/api/v1/projects").status_code == 200
    first = key_cache.api_key_by_prefix(key.prefix)
    first.revoked_at = first.created_at
    first.organization.name = "changed"
    again = key_cache.api_key_by_prefix(key.prefix)
    assert again.revoked_at is None and again.organization.name == org.name


def test_without_the_shared_token_nothing_is_trusted(team):
    org, _, _, key, client = team
    assert client.get("/api/v1/projects").status_code == 200
    cache.clear()  # a flushed or restarted Redis: the token is gone
    assert _key_queries(client)


def test_a_copy_of_a_cached_key_shares_no_state_with_the_cache(team):
    org, _, developer, key, client = team
    assert client.get("/api/v1/projects").status_code == 200  # cached
    first = key_cache.api_key_by_prefix(key.prefix)
    first.name = "changed by a request"
    first.organization.name = "changed too"
    first.created_by.user.email = "changed@example.com"
    first._state.fields_cache.clear()
    second = key_cache.api_key_by_prefix(key.prefix)
    assert (second.name, second.organization.name, second.created_by.user.email) == (
        key.name, org.name, developer.user.email)
    assert second.organization is not first.organization and second._state is not first._state
