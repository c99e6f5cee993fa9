"""Privilege escalation and mass assignment: nobody hands out more than they hold; no field slips in."""

from __future__ import annotations

import pytest

from projects.models import ApiKey, AuditEvent, Invitation, Membership, Organization, Project, User
from projects.roles import Role
from projects.tests.factories import (
    InvitationFactory,
    MembershipFactory,
    OrganizationFactory,
    ProjectFactory,
    make_api_key,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def org():
    org = OrganizationFactory()
    MembershipFactory(organization=org, role=Role.OWNER)
    return org


def client_for(org, role, make_client):
    _, secret = make_api_key(org, role=role)
    return make_client(secret)


@pytest.mark.parametrize("granted", [Role.OWNER, Role.ADMIN, Role.BILLING])
def test_developer_cannot_create_a_stronger_api_key(org, make_client, granted):
    client = client_for(org, Role.DEVELOPER, make_client)
    response = client.post("/api/v1/api-keys", {"name": "up", "role": granted}, format="json")
    assert response.status_code == 403
    assert not ApiKey.objects.filter(organization=org, name="up").exists()


@pytest.mark.parametrize("granted", [Role.DEVELOPER, Role.VIEWER])
def test_developer_can_create_an_equal_or_weaker_key(org, make_client, granted):
    client = client_for(org, Role.DEVELOPER, make_client)
    response = client.post("/api/v1/api-keys", {"name": "ok", "role": granted}, format="json")
    assert response.status_code == 201


@pytest.mark.parametrize("granted", [Role.ADMIN, Role.OWNER, Role.VIEWER])
def test_developer_cannot_invite_anyone(org, make_client, granted):
    client = client_for(org, Role.DEVELOPER, make_client)
    response = client.post("/api/v1/invitations", {"email": "a@example.com", "role": granted}, format="json")
    assert response.status_code == 403
    assert not Invitation.objects.filter(organization=org).exists()


def test_admin_cannot_grant_owner(org, make_client):
    client = client_for(org, Role.ADMIN, make_client)
    viewer = MembershipFactory(organization=org, role=Role.VIEWER)
    invite = client.post("/api/v1/invitations", {"email": "a@example.com", "role": "owner"}, format="json")
    assert invite.status_code == 403
    key = client.post("/api/v1/api-keys", {"name": "k", "role": "owner"}, format="json")
    assert key.status_code == 403
    promote = client.patch(f"/api/v1/members/{viewer.id}", {"role": "owner"}, format="json")
    assert promote.status_code == 403
    viewer.refresh_from_db()
    assert viewer.role == Role.VIEWER
    assert not Invitation.objects.filter(organization=org).exists()
    assert not ApiKey.objects.filter(organization=org, name="k").exists()
    # Admin can hand out admin, though.
    assert client.patch(f"/api/v1/members/{viewer.id}", {"role": "admin"}, format="json").status_code == 200


def test_admin_cannot_demote_remove_or_revoke_an_owner(org, make_client):
    client = client_for(org, Role.ADMIN, make_client)
    other_owner = MembershipFactory(organization=org, role=Role.OWNER)
    owner_key, _ = make_api_key(org, role=Role.OWNER, name="owner key")
    assert client.patch(f"/api/v1/members/{other_owner.id}", {"role": "viewer"}, format="json").status_code == 403
    assert client.delete(f"/api/v1/members/{other_owner.id}").status_code == 403
    assert client.delete(f"/api/v1/api-keys/{owner_key.id}").status_code == 403
    other_owner.refresh_from_db()
    owner_key.refresh_from_db()
    assert other_owner.role == Role.OWNER
    assert owner_key.revoked_at is None


def test_last_owner_cannot_be_demoted_or_removed(make_client, session_client):
    org = OrganizationFactory()
    owner = MembershipFactory(organization=org, role=Role.OWNER)
    client = session_client(owner.user)
    demote = client.patch(f"/api/v1/members/{owner.id}", {"role": "admin"}, format="json")
    assert demote.status_code == 409
    assert demote["Content-Type"] == "application/problem+json"
    assert client.delete(f"/api/v1/members/{owner.id}").status_code == 409
    key_client = client_for(org, Role.OWNER, make_client)
    assert key_client.patch(f"/api/v1/members/{owner.id}", {"role": "viewer"}, format="json").status_code == 409
    assert key_client.delete(f"/api/v1/members/{owner.id}").status_code == 409
    owner.refresh_from_db()
    assert owner.role == Role.OWNER


def test_one_of_two_owners_can_be_demoted(make_client):
    org = OrganizationFactory()
    first = MembershipFactory(organization=org, role=Role.OWNER)
    second = MembershipFactory(organization=org, role=Role.OWNER)
    client = client_for(org, Role.OWNER, make_client)
    assert client.patch(f"/api/v1/members/{first.id}", {"role": "admin"}, format="json").status_code == 200
    assert client.patch(f"/api/v1/members/{second.id}", {"role": "admin"}, format="json").status_code == 409
    assert Membership.objects.filter(organization=org, role=Role.OWNER).get() == second


FORBIDDEN_FIELDS = {
    "organization": "org_someoneelse00000000",
    "status": "accepted",
    "is_staff": True,
    "prefix": "deadbeef0000",
    "secret_hash": "0" * 64,
    "id": "prj_chosenbymeeeeeeeeeee",
    "surprise": 1,
}


def _snapshot(org: Organization) -> tuple:
    org.refresh_from_db()
    return (
        (org.name, org.site, org.country, org.flagship_enabled),
        sorted(Project.objects.filter(organization=org).values_list("id", "name", "description")),
        sorted(Membership.objects.filter(organization=org).values_list("id", "role")),
        sorted(Invitation.objects.filter(organization=org).values_list("id", "status", "role")),
        sorted(ApiKey.objects.filter(organization=org).values_list("id", "prefix", "secret_hash", "role")),
        User.objects.filter(is_staff=True).count(),
        AuditEvent.objects.filter(organization=org).count(),
    )


@pytest.mark.parametrize("field", list(FORBIDDEN_FIELDS))
@pytest.mark.parametrize(
    "endpoint",
    ["POST /projects", "PATCH /projects/{project}", "PATCH /organization", "PATCH /members/{member}",
     "POST /invitations", "POST /api-keys"],
)
def test_mass_assignment_is_refused_and_changes_nothing(make_client, endpoint, field):
    org = OrganizationFactory()
    MembershipFactory(organization=org, role=Role.OWNER)
    project = ProjectFactory(organization=org)
    member = MembershipFactory(organization=org, role=Role.VIEWER)
    InvitationFactory(organization=org)
    client = client_for(org, Role.OWNER, make_client)
    valid = {
        "POST /projects": {"name": "fresh"},
        "PATCH /projects/{project}": {"description": "x"},
        "PATCH /organization": {"name": "Renamed"},
        "PATCH /members/{member}": {"role": "developer"},
        "POST /invitations": {"email": "new@example.com", "role": "viewer"},
        "POST /api-keys": {"name": "k", "role": "viewer"},
    }[endpoint]
    method, path = endpoint.split(" ")
    path = "/api/v1" + path.format(project=project.id, member=member.id)
    before = _snapshot(org)
    response = getattr(client, method.lower())(path, {**valid, field: FORBIDDEN_FIELDS[field]}, format="json")
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert field in response.json()["errors"]
    assert _snapshot(org) == before


@pytest.mark.parametrize("field", ["is_staff", "is_superuser", "flagship_enabled", "organization", "role"])
def test_signup_refuses_extra_fields(anon, field):
    body = {"email": "ada@example.com", "password": "a-long-enough-passphrase", "organization_name": "Acme",
            "site": "global", "country": "DE", field: True}
    response = anon.post("/api/v1/signup", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not User.objects.filter(email="ada@example.com").exists()


@pytest.mark.parametrize("body", [[], ["name"], "name", 3, None])
def test_non_object_bodies_are_400(org, make_client, body):
    client = client_for(org, Role.OWNER, make_client)
    response = client.post("/api/v1/projects", body, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
