"""API keys are bound to the member who made them (issue 11, items 3 and 4): a key acts with the lesser of
its role and its creator's current role, stops working when its creator leaves, and developers manage only
their own keys. Organization service keys, made by an owner, are marked and outlive their maker."""

from __future__ import annotations

import pytest
from django.urls import reverse

from projects.models import ApiKey, AuditEvent, Membership
from projects.roles import Role
from projects.tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory, make_api_key
from tests.support import console_page

pytestmark = pytest.mark.django_db


def _mint(client, role: str, **body) -> dict:
    response = client.post("/api/v1/api-keys", {"name": f"{role} key", "role": role, **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def org(session_client):
    org = OrganizationFactory()
    owner = MembershipFactory(organization=org, role=Role.OWNER)
    return org, owner, session_client(owner.user)


def test_created_by_is_the_members_id_in_the_api(org, session_client, make_client):
    organization, owner, owner_client = org
    admin = MembershipFactory(organization=organization, role=Role.ADMIN)
    created = _mint(session_client(admin.user), Role.DEVELOPER)
    assert created["created_by"] == admin.id
    assert created["service"] is False
    assert ApiKey.objects.get(pk=created["id"]).created_by == admin
    # A key minted by a key is its creator's too, not an anonymous organization key.
    second = _mint(make_client(created["key"]), Role.VIEWER)
    assert second["created_by"] == admin.id and second["service"] is False
    listed = {k["id"]: k for k in owner_client.get("/api/v1/api-keys").json()["results"]}
    assert listed[created["id"]]["created_by"] == admin.id


def test_removed_admins_key_stops_working_and_is_revoked_with_an_audit_event(org, session_client, make_client):
    organization, owner, owner_client = org
    admin = MembershipFactory(organization=organization, role=Role.ADMIN)
    key = make_client(_mint(session_client(admin.user), Role.ADMIN)["key"])
    assert key.get("/api/v1/members").status_code == 200
    assert owner_client.delete(f"/api/v1/members/{admin.id}").status_code == 204

    # The reported hole: the removed admin's key still invited a new admin.
    response = key.post("/api/v1/invitations", {"email": "new-admin@example.com", "role": "admin"}, format="json")
    assert response.status_code == 401
    stored = ApiKey.objects.get(organization=organization, name="admin key")
    assert stored.revoked_at is not None
    event = AuditEvent.objects.get(organization=organization, action="api_key.revoke", target_id=stored.id)
    assert event.changes["reason"] == "creator removed"
    assert event.changes["creator"] == admin.id


def test_leaving_the_organization_revokes_your_keys(org, session_client, make_client):
    organization, _, _ = org
    dev = MembershipFactory(organization=organization, role=Role.DEVELOPER)
    dev_client = session_client(dev.user)
    key = make_client(_mint(dev_client, Role.DEVELOPER)["key"])
    assert dev_client.delete(f"/api/v1/members/{dev.id}").status_code == 204
    assert key.get("/api/v1/projects").status_code == 401


def test_demoted_creator_caps_the_keys_role(org, session_client, make_client):
    organization, _, owner_client = org
    admin = MembershipFactory(organization=organization, role=Role.ADMIN)
    created = _mint(session_client(admin.user), Role.ADMIN)
    key = make_client(created["key"])
    assert owner_client.patch(f"/api/v1/members/{admin.id}", {"role": "viewer"}, format="json").status_code == 200
    assert key.get("/api/v1/projects").status_code == 200
    assert key.post("/api/v1/projects", {"name": "nope"}, format="json").status_code == 403
    assert key.post("/api/v1/invitations", {"email": "n@example.com", "role": "viewer"},
                    format="json").status_code == 403
    # Neither role contains the other (developer vs billing): only what both allow, reading.
    assert owner_client.patch(f"/api/v1/members/{admin.id}", {"role": "billing"}, format="json").status_code == 200
    developer_key = ApiKey.objects.get(pk=created["id"])
    developer_key.role = Role.DEVELOPER  # no service changes a key's role; saved, as the admin site would
    developer_key.save(update_fields=["role"])
    assert key.post("/api/v1/projects", {"name": "nope"}, format="json").status_code == 403
    assert key.get("/api/v1/billing/account").status_code == 403
    assert key.get("/api/v1/projects").status_code == 200
    # Promoted back: the key's own role is the ceiling again.
    assert owner_client.patch(f"/api/v1/members/{admin.id}", {"role": "owner"}, format="json").status_code == 200
    assert key.post("/api/v1/projects", {"name": "yes"}, format="json").status_code == 201


def test_creator_later_limited_to_a_project_limits_the_key(org, session_client, make_client):
    organization, _, owner_client = org
    dev = MembershipFactory(organization=organization, role=Role.DEVELOPER)
    mine, other = ProjectFactory(organization=organization), ProjectFactory(organization=organization)
    key = make_client(_mint(session_client(dev.user), Role.DEVELOPER)["key"])
    assert owner_client.patch(f"/api/v1/members/{dev.id}", {"projects": [mine.id]}, format="json").status_code == 200
    assert [p["id"] for p in key.get("/api/v1/projects").json()["results"]] == [mine.id]
    assert key.get(f"/api/v1/projects/{other.id}").status_code == 404


def test_service_keys_are_owner_only_marked_and_outlive_their_maker(org, session_client, make_client):
    organization, owner, owner_client = org
    admin = MembershipFactory(organization=organization, role=Role.ADMIN)
    refused = session_client(admin.user).post("/api/v1/api-keys", {"name": "svc", "role": "viewer", "service": True},
                                              format="json")
    assert refused.status_code == 403
    second_owner = MembershipFactory(organization=organization, role=Role.OWNER)
    service = _mint(session_client(second_owner.user), Role.ADMIN, service=True)
    assert service["service"] is True and service["created_by"] is None
    assert AuditEvent.objects.get(action="api_key.create", target_id=service["id"]).changes["service"] is True
    assert owner_client.delete(f"/api/v1/members/{second_owner.id}").status_code == 204
    assert make_client(service["key"]).get("/api/v1/members").status_code == 200
    assert ApiKey.objects.get(pk=service["id"]).revoked_at is None


def test_developers_see_and_revoke_only_their_own_keys(org, session_client, make_client):
    organization, owner, owner_client = org
    owners_key = _mint(owner_client, Role.OWNER)
    make_client(owners_key["key"]).get("/api/v1/projects")  # records a last-used address
    dev = MembershipFactory(organization=organization, role=Role.DEVELOPER)
    other_dev = MembershipFactory(organization=organization, role=Role.DEVELOPER)
    dev_client = session_client(dev.user)
    own = _mint(dev_client, Role.DEVELOPER)
    theirs = _mint(session_client(other_dev.user), Role.VIEWER)

    listing = dev_client.get("/api/v1/api-keys").json()["results"]
    assert [k["id"] for k in listing] == [own["id"]]
    assert "127.0.0.1" not in str(listing)
    for foreign in (owners_key, theirs):
        assert dev_client.get(f"/api/v1/api-keys/{foreign['id']}").status_code == 404
        assert dev_client.delete(f"/api/v1/api-keys/{foreign['id']}").status_code == 404
        assert ApiKey.objects.get(pk=foreign["id"]).revoked_at is None
    # The developer's own key sees the same: its creator's keys only.
    assert [k["id"] for k in make_client(own["key"]).get("/api/v1/api-keys").json()["results"]] == [own["id"]]
    assert dev_client.delete(f"/api/v1/api-keys/{own['id']}").status_code == 204

    admin_client = session_client(MembershipFactory(organization=organization, role=Role.ADMIN).user)
    everyone = {k["id"] for k in admin_client.get("/api/v1/api-keys").json()["results"]}
    assert {owners_key["id"], own["id"], theirs["id"]} <= everyone
    assert admin_client.delete(f"/api/v1/api-keys/{theirs['id']}").status_code == 204


def test_console_lists_only_a_developers_own_keys_and_shows_the_creator(org, session_client):
    from django.test import Client

    organization, owner, owner_client = org
    owners_key = _mint(owner_client, Role.OWNER)
    dev = MembershipFactory(organization=organization, role=Role.DEVELOPER)
    own = _mint(session_client(dev.user), Role.DEVELOPER)
    client = Client()
    client.force_login(dev.user)
    page = console_page(client, "api-keys")
    assert own["prefix"] in page and owners_key["prefix"] not in page
    response = client.post(reverse("console:api-key-revoke", args=[owners_key["id"]]))
    assert response.status_code == 404
    owner_console = Client()
    owner_console.force_login(owner.user)
    page = console_page(owner_console, "api-keys")
    assert dev.user.email in page and own["prefix"] in page


def test_key_of_a_deleted_membership_does_not_work_even_if_not_revoked(make_client):
    organization = OrganizationFactory()
    member = MembershipFactory(organization=organization, role=Role.ADMIN)
    _, secret = make_api_key(organization, role=Role.ADMIN, created_by=member)
    assert make_client(secret).get("/api/v1/projects").status_code == 200
    Membership.objects.filter(pk=member.pk).delete()  # e.g. the user was deleted on the ops site
    assert make_client(secret).get("/api/v1/projects").status_code == 401


def test_key_of_a_deactivated_creator_does_not_work(make_client):
    # An operator deactivating an account (rather than removing its memberships) stops its keys too.
    organization = OrganizationFactory()
    member = MembershipFactory(organization=organization, role=Role.ADMIN)
    _, secret = make_api_key(organization, role=Role.ADMIN, created_by=member)
    assert make_client(secret).get("/api/v1/projects").status_code == 200
    member.user.is_active = False
    member.user.save(update_fields=["is_active"])
    assert make_client(secret).get("/api/v1/projects").status_code == 401
