from __future__ import annotations

import pytest

from projects.models import AuditEvent
from projects.roles import Role
from projects.tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory, make_api_key

pytestmark = pytest.mark.django_db


def signup(anon, email="ada@example.com", **extra):
    body = {"email": email, "password": "a-long-enough-passphrase", "organization_name": "Acme",
            "site": "global", "country": "de"} | extra
    return anon.post("/api/v1/signup", body, format="json")


def test_signup_returns_org_user_and_a_working_key(anon, make_client):
    response = signup(anon)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["organization"]["id"].startswith("org_")
    assert body["organization"]["currency"] == "USD"
    assert body["organization"]["country"] == "DE"
    assert body["user"]["id"].startswith("usr_")
    assert body["api_key"]["key"].startswith("mqc_")
    client = make_client(body["api_key"]["key"])
    org = client.get("/api/v1/organization")
    assert org.status_code == 200
    assert org.json()["id"] == body["organization"]["id"]
    projects = client.get("/api/v1/projects").json()
    assert [p["name"] for p in projects["results"]] == ["Default project"]
    assert projects["next"] is None


def test_signup_rejects_bad_input_with_problem_details(anon):
    response = signup(anon, email="not-an-email", site="mars", password="short")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert set(body) >= {"type", "title", "status", "detail", "errors"}
    assert {"email", "site"} <= set(body["errors"])


def test_signup_twice_with_the_same_email_conflicts(anon):
    assert signup(anon).status_code == 201
    response = signup(anon)
    assert response.status_code == 409


def test_missing_and_invalid_credentials_are_401(anon, make_client):
    assert anon.get("/api/v1/projects").status_code == 401
    response = make_client("mqc_nope_nope").get("/api/v1/projects")
    assert response.status_code == 401
    assert response.json()["status"] == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_malformed_json_is_400(make_client):
    org = OrganizationFactory()
    _, secret = make_api_key(org)
    response = make_client(secret).post("/api/v1/projects", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["title"] == "Malformed request body"


def test_unknown_fields_are_refused_and_organization_cannot_be_assigned(make_client):
    org, other = OrganizationFactory(), OrganizationFactory()
    _, secret = make_api_key(org)
    response = make_client(secret).post("/api/v1/projects", {"name": "x", "organization": other.id}, format="json")
    assert response.status_code == 400
    assert "organization" in response.json()["errors"]
    assert not other.projects.exists()


def test_project_crud_is_audited(make_client):
    org = OrganizationFactory()
    _, secret = make_api_key(org)
    client = make_client(secret)
    created = client.post("/api/v1/projects", {"name": "fleet", "description": "trucks"}, format="json")
    assert created.status_code == 201
    project_id = created.json()["id"]
    assert project_id.startswith("prj_")
    patched = client.patch(f"/api/v1/projects/{project_id}", {"description": "vans"}, format="json")
    assert patched.status_code == 200 and patched.json()["description"] == "vans"
    assert client.delete(f"/api/v1/projects/{project_id}").status_code == 204
    assert client.get(f"/api/v1/projects/{project_id}").status_code == 404
    actions = list(AuditEvent.objects.filter(organization=org, target_id=project_id).values_list("action", flat=True))
    assert sorted(actions) == ["project.create", "project.delete", "project.update"]
    update = AuditEvent.objects.get(organization=org, action="project.update")
    assert update.changes == {"description": ["trucks", "vans"]}


def test_other_organizations_objects_are_404(make_client):
    org, other = OrganizationFactory(), OrganizationFactory()
    theirs = ProjectFactory(organization=other)
    _, secret = make_api_key(org)
    client = make_client(secret)
    assert client.get(f"/api/v1/projects/{theirs.id}").status_code == 404
    assert client.patch(f"/api/v1/projects/{theirs.id}", {"name": "mine"}, format="json").status_code == 404
    assert client.delete(f"/api/v1/projects/{theirs.id}").status_code == 404


def test_viewer_reads_but_cannot_write(make_client):
    org = OrganizationFactory()
    _, secret = make_api_key(org, role=Role.VIEWER)
    client = make_client(secret)
    assert client.get("/api/v1/projects").status_code == 200
    response = client.post("/api/v1/projects", {"name": "nope"}, format="json")
    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"


def test_catalog_prices_follow_the_organization_currency(make_client):
    org = OrganizationFactory(site="cn", country="CN")
    _, secret = make_api_key(org, role=Role.VIEWER)
    specs = make_client(secret).get("/api/v1/specs").json()["results"]
    assert specs and all(spec["prices"]["currency"] == "CNY" for spec in specs)
    assert not any(spec["tier"] == "flagship" for spec in specs)
    regions = make_client(secret).get("/api/v1/regions").json()["results"]
    assert {r["id"] for r in regions} == {"aws-cn-north-1", "azure-chinaeast2"}


def test_session_user_picks_organization_with_header(client):
    first, second = MembershipFactory(), None
    second = MembershipFactory(user=first.user, role=Role.VIEWER)
    client.force_login(first.user)
    assert client.get("/api/v1/organization").json()["id"] == first.organization_id
    picked = client.get("/api/v1/organization", HTTP_X_ORGANIZATION=second.organization_id)
    assert picked.json()["id"] == second.organization_id
    stranger = OrganizationFactory()
    assert client.get("/api/v1/organization", HTTP_X_ORGANIZATION=stranger.id).status_code == 404


def test_the_base_view_adds_the_organization_filter_only_where_the_selector_has_none():
    from django.db.models import Q

    from deployments.models import Deployment
    from projects.api.base import _scoped_to
    from projects.models import Project

    org, other = OrganizationFactory(), OrganizationFactory()
    assert _scoped_to(Project.objects.filter(organization_id=org.pk), org.pk)
    assert _scoped_to(Project.objects.filter(organization_id=org.pk).filter(name="a").order_by("name"), org.pk)
    assert not _scoped_to(Project.objects.filter(organization_id=other.pk), org.pk)
    assert not _scoped_to(Project.objects.all(), org.pk)
    assert not _scoped_to(Project.objects.filter(Q(organization_id=org.pk) | Q(name="a")), org.pk)
    assert not _scoped_to(Project.objects.exclude(organization_id=org.pk), org.pk)
    # Another table's organization says nothing about this one's rows.
    assert not _scoped_to(Deployment.objects.filter(project__organization_id=org.pk), org.pk)


def test_a_list_holds_one_organization_filter(make_client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    org = OrganizationFactory()
    ProjectFactory(organization=org)
    _, secret = make_api_key(org)
    client = make_client(secret)
    client.get("/api/v1/projects")  # the key is cached
    with CaptureQueriesContext(connection) as queries:
        assert len(client.get("/api/v1/projects").json()["results"]) == 1
    (listing,) = [q["sql"] for q in queries if 'FROM "projects_project"' in q["sql"]]
    assert listing.count('"organization_id" =') == 1
