"""Sub-accounts and keys limited to some projects see and act only within them."""

from __future__ import annotations

import pytest

from projects.models import ApiKey, Invitation, Project
from projects.roles import Role
from projects.tests.factories import (
    ApiKeyFactory,
    AuditEventFactory,
    InvitationFactory,
    MembershipFactory,
    OrganizationFactory,
    ProjectFactory,
    make_api_key,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["api_key", "session"])
def limited(request, make_client, session_client):
    """(client, org, mine, others): an admin of ``org`` limited to project ``mine``."""
    org = OrganizationFactory()
    MembershipFactory(organization=org, role=Role.OWNER)
    mine = ProjectFactory(organization=org, name="mine")
    others = [ProjectFactory(organization=org, name=f"other-{n}") for n in range(2)]
    if request.param == "api_key":
        _, secret = make_api_key(org, role=Role.ADMIN, projects=[mine])
        client = make_client(secret)
    else:
        member = MembershipFactory(organization=org, role=Role.ADMIN, projects=[mine])
        client = session_client(member.user)
    return client, org, mine, others


def test_project_list_is_filtered(limited):
    client, _, mine, _ = limited
    body = client.get("/api/v1/projects").json()
    assert [p["id"] for p in body["results"]] == [mine.id]


def test_other_projects_are_404_for_every_method(limited):
    client, _, mine, others = limited
    for other in others:
        assert client.get(f"/api/v1/projects/{other.id}").status_code == 404
        assert client.patch(f"/api/v1/projects/{other.id}", {"name": "taken"}, format="json").status_code == 404
        assert client.delete(f"/api/v1/projects/{other.id}").status_code == 404
        assert Project.objects.filter(pk=other.pk, name=other.name).exists()
    assert client.get(f"/api/v1/projects/{mine.id}").status_code == 200
    assert client.patch(f"/api/v1/projects/{mine.id}", {"description": "ok"}, format="json").status_code == 200


def test_limited_principal_cannot_create_projects(limited):
    client, org, _, _ = limited
    assert client.post("/api/v1/projects", {"name": "escape"}, format="json").status_code == 403
    assert not Project.objects.filter(organization=org, name="escape").exists()


def test_members_list_shows_only_people_sharing_a_project(limited):
    client, org, mine, others = limited
    sharing = MembershipFactory(organization=org, role=Role.VIEWER, projects=[mine])
    elsewhere = MembershipFactory(organization=org, role=Role.VIEWER, projects=[others[0]])
    ids = {m["id"] for m in client.get("/api/v1/members").json()["results"]}
    assert sharing.id in ids
    assert elsewhere.id not in ids
    assert client.get(f"/api/v1/members/{elsewhere.id}").status_code == 404
    assert client.patch(f"/api/v1/members/{elsewhere.id}", {"role": "developer"}, format="json").status_code == 404
    assert client.delete(f"/api/v1/members/{elsewhere.id}").status_code == 404


def test_limited_admin_grants_only_its_own_projects(limited):
    client, org, mine, others = limited
    outside = client.post("/api/v1/invitations", {"email": "x@example.com", "role": "viewer",
                                                  "projects": [others[0].id]}, format="json")
    # A project the caller cannot see is reported as unknown, not as forbidden.
    assert outside.status_code == 400
    unlimited = client.post("/api/v1/invitations", {"email": "y@example.com", "role": "viewer"}, format="json")
    assert unlimited.status_code == 403
    inside = client.post("/api/v1/invitations", {"email": "z@example.com", "role": "viewer",
                                                 "projects": [mine.id]}, format="json")
    assert inside.status_code == 201, inside.content
    assert inside.json()["projects"] == [mine.id]
    assert list(Invitation.objects.filter(organization=org).values_list("email", flat=True)) == ["z@example.com"]


def test_api_key_created_by_limited_principal_inherits_its_limits(limited):
    client, _, mine, others = limited
    created = client.post("/api/v1/api-keys", {"name": "ci", "role": "developer"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["projects"] == [mine.id]
    assert ApiKey.objects.get(pk=created.json()["id"]).projects.get() == mine
    wider = client.post("/api/v1/api-keys", {"name": "ci2", "role": "developer", "projects": [others[0].id]},
                        format="json")
    assert wider.status_code == 400


def test_lists_of_keys_and_invitations_hide_other_projects(limited):
    client, org, mine, others = limited
    key_mine = ApiKeyFactory(organization=org, projects=[mine])
    key_other = ApiKeyFactory(organization=org, projects=[others[0]])
    inv_mine = InvitationFactory(organization=org, projects=[mine])
    inv_other = InvitationFactory(organization=org, projects=[others[0]])
    keys = {k["id"] for k in client.get("/api/v1/api-keys").json()["results"]}
    assert key_mine.id in keys and key_other.id not in keys
    assert client.get(f"/api/v1/api-keys/{key_other.id}").status_code == 404
    assert client.delete(f"/api/v1/api-keys/{key_other.id}").status_code == 404
    invitations = {i["id"] for i in client.get("/api/v1/invitations").json()["results"]}
    assert inv_mine.id in invitations and inv_other.id not in invitations
    assert client.delete(f"/api/v1/invitations/{inv_other.id}").status_code == 404


def test_audit_log_hides_events_about_other_projects(limited):
    client, org, mine, others = limited
    about_mine = AuditEventFactory(organization=org, target_id=mine.id)
    about_other = AuditEventFactory(organization=org, target_id=others[0].id)
    ids = {e["id"] for e in client.get("/api/v1/audit-events").json()["results"]}
    assert about_mine.id in ids
    assert about_other.id not in ids
    assert client.get(f"/api/v1/audit-events/{about_other.id}").status_code == 404


def test_project_filter_on_members(make_client):
    org = OrganizationFactory()
    p1, p2 = ProjectFactory(organization=org), ProjectFactory(organization=org)
    everywhere = MembershipFactory(organization=org, role=Role.OWNER)
    only_p1 = MembershipFactory(organization=org, role=Role.VIEWER, projects=[p1])
    only_p2 = MembershipFactory(organization=org, role=Role.VIEWER, projects=[p2])
    _, secret = make_api_key(org)
    body = make_client(secret).get("/api/v1/members", {"project": p1.id}).json()
    assert {m["id"] for m in body["results"]} == {everywhere.id, only_p1.id}
    assert only_p2.id not in {m["id"] for m in body["results"]}


@pytest.mark.parametrize("credential", ["api_key", "session"])
@pytest.mark.parametrize("role", list(Role.values))
def test_every_role_limited_to_a_project_sees_only_it(role, credential, make_client, session_client):
    org = OrganizationFactory()
    MembershipFactory(organization=org, role=Role.OWNER)
    mine, other = ProjectFactory(organization=org), ProjectFactory(organization=org)
    if credential == "api_key":
        client = make_client(make_api_key(org, role=role, projects=[mine])[1])
    else:
        client = session_client(MembershipFactory(organization=org, role=role, projects=[mine]).user)
    assert [p["id"] for p in client.get("/api/v1/projects").json()["results"]] == [mine.id]
    assert client.get(f"/api/v1/projects/{mine.id}").status_code == 200
    assert client.get(f"/api/v1/projects/{other.id}").status_code == 404
    assert client.get("/api/v1/projects", {"name": other.name}).json()["results"] == []
