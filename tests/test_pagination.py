"""Cursor pagination: ``?limit=`` (default 50, max 200), ``next`` links that walk every row once."""

from __future__ import annotations

import pytest

from projects.roles import Role
from projects.tests.factories import OrganizationFactory, ProjectFactory, make_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def many(make_client):
    org = OrganizationFactory()
    # Names fixed here rather than by the factory's sequence, which depends on what ran before.
    projects = [ProjectFactory(organization=org, name=f"project-{n}") for n in range(120)]
    ProjectFactory.create_batch(3)  # other organizations' rows never show up
    _, secret = make_api_key(org, role=Role.VIEWER)
    return make_client(secret), {p.id for p in projects}


def walk(client, url):
    seen, pages = [], 0
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        assert set(body) == {"results", "next"}
        seen.extend(item["id"] for item in body["results"])
        url = body["next"]
        pages += 1
        assert pages < 50
    return seen, pages


def test_default_limit_is_50(many):
    client, _ = many
    body = client.get("/api/v1/projects").json()
    assert len(body["results"]) == 50
    assert body["next"].startswith("http://testserver/api/v1/projects?")


@pytest.mark.parametrize(("limit", "pages"), [(None, 3), (7, 18), (50, 3), (119, 2), (120, 1), (200, 1)])
def test_next_links_walk_every_row_exactly_once(many, limit, pages):
    client, expected = many
    url = "/api/v1/projects" + (f"?limit={limit}" if limit else "")
    seen, walked = walk(client, url)
    assert len(seen) == len(set(seen)) == 120
    assert set(seen) == expected
    assert walked == pages


def test_newest_first(many):
    client, _ = many
    results = client.get("/api/v1/projects?limit=200").json()["results"]
    stamps = [item["created_at"] for item in results]
    assert stamps == sorted(stamps, reverse=True)


def test_pagination_keeps_filters(many):
    client, _ = many
    seen, _ = walk(client, "/api/v1/projects?limit=5&name=project-1")
    assert seen and len(seen) == len(set(seen))
    assert all("project-1" in p["name"] for p in client.get("/api/v1/projects?limit=200&name=project-1")
               .json()["results"])


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "500", "201", "1.5", "1e3"])
def test_bad_limit_is_400_problem(many, limit):
    client, _ = many
    response = client.get("/api/v1/projects", {"limit": limit})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert "limit" in response.json()["errors"]


@pytest.mark.parametrize("cursor", ["garbage", "cD0yMDI0", "!!!", "bz0xJnA9eA=="])
def test_bad_cursor_is_400_problem(many, cursor):
    client, _ = many
    response = client.get("/api/v1/projects", {"cursor": cursor})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert "cursor" in response.json()["errors"]


@pytest.mark.parametrize("path", ["/api/v1/members", "/api/v1/api-keys", "/api/v1/invitations",
                                  "/api/v1/audit-events", "/api/v1/regions", "/api/v1/specs"])
def test_every_list_is_paginated(make_client, path):
    org = OrganizationFactory()
    _, secret = make_api_key(org, role=Role.OWNER)
    body = make_client(secret).get(path, {"limit": 1}).json()
    assert set(body) == {"results", "next"}
    assert len(body["results"]) <= 1
