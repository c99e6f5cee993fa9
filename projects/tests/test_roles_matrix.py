"""Every role × every tenancy action: 2xx exactly when ``ROLE_PERMISSIONS`` grants the action's permission.

Run once with an API key of the role and once as a console member of the role, since the two
credentials build their principal on different paths.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from projects.models import ApiKey, AuditEvent, Invitation, Membership, Organization, Project
from projects.roles import Perm, Role, role_has
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


@dataclass
class World:
    org: Organization
    client: APIClient
    project: Project
    member: Membership  # a viewer someone may change or remove
    invitation: Invitation
    api_key: ApiKey  # a viewer key of the actor's, which anyone who manages keys may revoke
    event: AuditEvent


@pytest.fixture(params=["api_key", "session"])
def credential(request) -> str:
    return request.param


def build_world(role: str, credential: str, make_client, session_client) -> World:
    org = OrganizationFactory()
    MembershipFactory(organization=org, role=Role.OWNER)  # the organization always keeps an owner
    actor = MembershipFactory(organization=org, role=role)
    if credential == "api_key":
        # A member's key, acting as the member (its role is the member's, so the lesser is the same).
        _, secret = make_api_key(org, role=role, created_by=actor)
        client = make_client(secret)
    else:
        client = session_client(actor.user)
    return World(
        org=org,
        client=client,
        project=ProjectFactory(organization=org),
        member=MembershipFactory(organization=org, role=Role.VIEWER),
        invitation=InvitationFactory(organization=org, role=Role.VIEWER),
        # The actor's own: developers manage only their own keys (others' are tested in test_api_key_creator).
        api_key=ApiKeyFactory(organization=org, role=Role.VIEWER, created_by=actor, service=False),
        event=AuditEventFactory(organization=org),
    )


Call = Callable[[World], object]

# action → (permission it needs, the request)
ACTIONS: dict[str, tuple[str, Call]] = {
    "projects.list": (Perm.READ, lambda w: w.client.get("/api/v1/projects")),
    "projects.retrieve": (Perm.READ, lambda w: w.client.get(f"/api/v1/projects/{w.project.id}")),
    "projects.create": (Perm.PROJECTS_WRITE, lambda w: w.client.post("/api/v1/projects", {"name": "new"},
                                                                      format="json")),
    "projects.patch": (Perm.PROJECTS_WRITE, lambda w: w.client.patch(f"/api/v1/projects/{w.project.id}",
                                                                     {"description": "changed"}, format="json")),
    "projects.delete": (Perm.PROJECTS_WRITE, lambda w: w.client.delete(f"/api/v1/projects/{w.project.id}")),
    "members.list": (Perm.READ, lambda w: w.client.get("/api/v1/members")),
    "members.retrieve": (Perm.READ, lambda w: w.client.get(f"/api/v1/members/{w.member.id}")),
    "members.patch": (Perm.MEMBERS_MANAGE, lambda w: w.client.patch(f"/api/v1/members/{w.member.id}",
                                                                     {"role": "developer"}, format="json")),
    "members.delete": (Perm.MEMBERS_MANAGE, lambda w: w.client.delete(f"/api/v1/members/{w.member.id}")),
    "invitations.create": (Perm.MEMBERS_MANAGE, lambda w: w.client.post(
        "/api/v1/invitations", {"email": "new@example.com", "role": "viewer"}, format="json")),
    "invitations.list": (Perm.MEMBERS_MANAGE, lambda w: w.client.get("/api/v1/invitations")),
    "invitations.retrieve": (Perm.MEMBERS_MANAGE, lambda w: w.client.get(f"/api/v1/invitations/{w.invitation.id}")),
    "invitations.revoke": (Perm.MEMBERS_MANAGE, lambda w: w.client.delete(f"/api/v1/invitations/{w.invitation.id}")),
    "api_keys.create": (Perm.API_KEYS_MANAGE, lambda w: w.client.post(
        "/api/v1/api-keys", {"name": "ci", "role": "viewer"}, format="json")),
    "api_keys.list": (Perm.API_KEYS_MANAGE, lambda w: w.client.get("/api/v1/api-keys")),
    "api_keys.retrieve": (Perm.API_KEYS_MANAGE, lambda w: w.client.get(f"/api/v1/api-keys/{w.api_key.id}")),
    "api_keys.revoke": (Perm.API_KEYS_MANAGE, lambda w: w.client.delete(f"/api/v1/api-keys/{w.api_key.id}")),
    "audit_events.list": (Perm.AUDIT_READ, lambda w: w.client.get("/api/v1/audit-events")),
    "audit_events.retrieve": (Perm.AUDIT_READ, lambda w: w.client.get(f"/api/v1/audit-events/{w.event.id}")),
    "organization.retrieve": (Perm.READ, lambda w: w.client.get("/api/v1/organization")),
    "organization.patch": (Perm.ORGANIZATION_MANAGE, lambda w: w.client.patch(
        "/api/v1/organization", {"name": "Renamed"}, format="json")),
}


@pytest.mark.parametrize("action", list(ACTIONS))
@pytest.mark.parametrize("role", list(Role.values))
def test_role_matrix(role, action, credential, make_client, session_client):
    perm, call = ACTIONS[action]
    world = build_world(role, credential, make_client, session_client)
    response = call(world)
    if role_has(role, perm):
        assert 200 <= response.status_code < 300, (role, action, response.status_code, response.content)
    else:
        assert response.status_code == 403, (role, action, response.status_code, response.content)
        assert response["Content-Type"] == "application/problem+json"


REFUSED_WRITES = [
    (role, action)
    for action in ("projects.patch", "projects.delete", "members.patch", "members.delete", "invitations.revoke",
                   "api_keys.revoke", "organization.patch")
    for role in Role.values
    if not role_has(role, ACTIONS[action][0])
]


@pytest.mark.parametrize(("role", "action"), REFUSED_WRITES)
def test_refused_writes_change_nothing(role, action, credential, make_client, session_client):
    _, call = ACTIONS[action]
    world = build_world(role, credential, make_client, session_client)
    events_before = AuditEvent.objects.filter(organization=world.org).count()
    assert call(world).status_code == 403
    world.project.refresh_from_db()
    world.member.refresh_from_db()
    world.invitation.refresh_from_db()
    world.api_key.refresh_from_db()
    world.org.refresh_from_db()
    assert world.project.description == ""
    assert world.member.role == Role.VIEWER
    assert world.invitation.status == Invitation.Status.PENDING
    assert world.api_key.revoked_at is None
    assert world.org.name != "Renamed"
    assert AuditEvent.objects.filter(organization=world.org).count() == events_before


def test_any_member_may_leave_but_the_last_owner_may_not(session_client):
    org = OrganizationFactory()
    owner = MembershipFactory(organization=org, role=Role.OWNER)
    viewer = MembershipFactory(organization=org, role=Role.VIEWER)
    assert session_client(viewer.user).delete(f"/api/v1/members/{viewer.id}").status_code == 204
    assert not Membership.objects.filter(pk=viewer.pk).exists()
    response = session_client(owner.user).delete(f"/api/v1/members/{owner.id}")
    assert response.status_code == 409
    assert Membership.objects.filter(pk=owner.pk).exists()
