"""Issue 17, item 5: SCIM 2.0 provisioning per organization (/scim/v2/, RFC 7643/7644), with its own bearer
token; groups map to roles and project limits; deactivation ends consoles; the last owner stays."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from projects.models import AuditEvent, ConsoleSession, Membership, ScimUser, User
from projects.roles import Role
from projects.tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, ProjectFactory, make_api_key
from tests.support import console_login

pytestmark = pytest.mark.django_db
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


class Scim:
    def __init__(self, token: str | None) -> None:
        self.client = Client()
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def call(self, method: str, path: str, body: dict | None = None, status: int | None = None) -> dict:
        response = getattr(self.client, method)(f"/scim/v2/{path}", data=json.dumps(body) if body is not None else None,
                                                content_type="application/scim+json", headers=self.headers)
        if status is not None:
            assert response.status_code == status, response.content
        if response.status_code == 204:
            return {}
        assert response["Content-Type"].startswith("application/scim+json")
        return response.json()


@pytest.fixture
def org():
    organization = OrganizationFactory()
    owner = MembershipFactory(organization=organization, role=Role.OWNER)
    _, secret = make_api_key(organization, role=Role.OWNER, created_by=owner)
    api = Client(headers={"Authorization": f"Bearer {secret}"})
    response = api.post("/api/v1/organization/scim-token")
    assert response.status_code == 201, response.content
    return organization, owner, Scim(response.json()["token"]), api


def _user(scim: Scim, email: str, **extra) -> dict:
    return scim.call("post", "Users", {"schemas": [USER], "userName": email, **extra}, 201)


def test_token_api_shows_the_secret_once_and_audits(org):
    organization, _, scim, api = org
    status = api.get("/api/v1/organization/scim-token").json()
    assert status["enabled"] is True and "token" not in status and status["role"] == "owner"
    assert status["base_url"].endswith("/scim/v2/")
    rotated = api.post("/api/v1/organization/scim-token").json()
    scim.call("get", "Users", status=401)  # the old one stops at once
    Scim(rotated["token"]).call("get", "Users", status=200)
    assert api.delete("/api/v1/organization/scim-token").status_code == 204
    Scim(rotated["token"]).call("get", "Users", status=401)
    assert api.delete("/api/v1/organization/scim-token").status_code == 404
    actions = list(AuditEvent.objects.filter(organization=organization, action__startswith="scim_token")
                   .order_by("created_at").values_list("action", flat=True))
    assert actions == ["scim_token.create", "scim_token.rotate", "scim_token.revoke"]


def test_token_api_is_for_member_managers(org):
    organization, _, _, _ = org
    developer = MembershipFactory(organization=organization, role=Role.DEVELOPER)
    _, secret = make_api_key(organization, role=Role.DEVELOPER, created_by=developer)
    response = Client(headers={"Authorization": f"Bearer {secret}"}).post("/api/v1/organization/scim-token")
    assert response.status_code == 403
    assert response["Content-Type"].startswith("application/problem+json")


def test_missing_wrong_and_other_organizations_tokens_get_401(org):
    _, _, scim, _ = org
    created = _user(scim, "ann@example.com")
    for token in (None, "scim_000000000000_nope", "not-a-token"):
        body = Scim(token).call("get", "Users", status=401)
        assert body["schemas"] == [ERROR] and body["status"] == "401"
    other_org = OrganizationFactory()
    other_owner = MembershipFactory(organization=other_org, role=Role.OWNER)
    _, secret = make_api_key(other_org, role=Role.OWNER, created_by=other_owner)
    other_token = Client(headers={"Authorization": f"Bearer {secret}"}).post(
        "/api/v1/organization/scim-token").json()["token"]
    other = Scim(other_token)
    # The other organization's token works for its own organization only: ours are not there.
    other.call("get", f"Users/{created['id']}", status=404)
    assert other.call("get", "Users", status=200)["totalResults"] == 0
    # And an API key is no SCIM token.
    _, api_secret = make_api_key(other_org, role=Role.OWNER, created_by=other_owner)
    Scim(api_secret).call("get", "Users", status=401)


def test_create_makes_an_account_without_password_and_a_member_who_sees_nothing(org):
    organization, _, scim, _ = org
    body = _user(scim, "New.Person@Example.com", externalId="ext-1", name={"givenName": "New", "familyName": "P"})
    assert body["userName"] == "New.Person@Example.com" and body["active"] is True
    assert body["emails"][0]["value"] == "new.person@example.com"  # no emails sent: the userName is the address
    user = User.objects.get(email="new.person@example.com")
    assert not user.has_usable_password()
    membership = Membership.objects.get(organization=organization, user=user)
    assert membership.role == Role.VIEWER and membership.project_limit() == frozenset()
    duplicate = scim.call("post", "Users", {"schemas": [USER], "userName": "new.person@example.com"}, 409)
    assert duplicate["scimType"] == "uniqueness"
    actions = set(AuditEvent.objects.filter(organization=organization, action__startswith="scim.")
                  .values_list("action", flat=True))
    assert {"scim.user_account_create", "scim.user_create", "scim.member_create", "scim.user_activate"} <= actions
    event = AuditEvent.objects.filter(organization=organization, action="scim.user_create").get()
    assert event.actor_type == "scim" and event.actor_label.startswith("SCIM token (scim_")


def test_filters(org):
    _, _, scim, _ = org
    ann = _user(scim, "ann@example.com", externalId="a-1", displayName="Ann")
    _user(scim, "bob@corp.test", externalId="b-2", displayName="Bob", active=False)

    def names(expression: str) -> set[str]:
        response = scim.client.get("/scim/v2/Users", {"filter": expression}, headers=scim.headers)
        assert response.status_code == 200, response.content
        return {r["userName"] for r in response.json()["Resources"]}

    assert names('userName eq "ANN@example.com"') == {"ann@example.com"}
    assert names('userName ne "ann@example.com"') == {"bob@corp.test"}
    assert names('emails.value co "corp"') == {"bob@corp.test"}
    assert names('emails[value sw "ann"]') == {"ann@example.com"}
    assert names('displayName sw "b"') == {"bob@corp.test"}
    assert names("active eq false") == {"bob@corp.test"}
    assert names('externalId pr and (active eq true or displayName eq "Bob")') == {"ann@example.com",
                                                                                  "bob@corp.test"}
    assert names('not (userName ew ".test")') == {"ann@example.com"}
    group = scim.call("post", "Groups", {"schemas": [GROUP], "displayName": "eng",
                                         "members": [{"value": ann["id"]}]}, 201)
    response = scim.client.get("/scim/v2/Groups", {"filter": f'members.value eq "{ann["id"]}"'}, headers=scim.headers)
    assert [g["id"] for g in response.json()["Resources"]] == [group["id"]]
    for bad in ('password eq "x"', 'userName zz "x"', "userName eq unquoted", '(userName eq "x"'):
        response = scim.client.get("/scim/v2/Users", {"filter": bad}, headers=scim.headers)
        assert response.status_code == 400 and response.json()["scimType"] == "invalidFilter", bad


def test_pagination(org):
    _, _, scim, _ = org
    for n in range(5):
        _user(scim, f"p{n}@example.com")
    response = scim.client.get("/scim/v2/Users", {"startIndex": 2, "count": 2}, headers=scim.headers).json()
    assert response["totalResults"] == 6 - 1 and response["startIndex"] == 2 and response["itemsPerPage"] == 2
    assert [r["userName"] for r in response["Resources"]] == ["p1@example.com", "p2@example.com"]


def test_patch_operations(org):
    _, _, scim, _ = org
    ann = _user(scim, "ann@example.com", displayName="Ann")
    path = f"Users/{ann['id']}"
    body = scim.call("patch", path, {"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "displayName", "value": "Ann B"},
        {"op": "add", "path": "name.givenName", "value": "Ann"},
        {"op": "add", "value": {"externalId": "x-9"}},
    ]}, 200)
    assert body["displayName"] == "Ann B" and body["name"]["givenName"] == "Ann" and body["externalId"] == "x-9"
    body = scim.call("patch", path, {"schemas": [PATCH], "Operations": [{"op": "remove", "path": "externalId"}]}, 200)
    assert "externalId" not in body
    scim.call("patch", path, {"schemas": [PATCH], "Operations": [{"op": "jump"}]}, 400)
    scim.call("patch", path, {"Operations": [{"op": "remove", "path": "externalId"}]}, 400)
    bob = _user(scim, "bob@example.com")
    group = scim.call("post", "Groups", {"schemas": [GROUP], "displayName": "eng"}, 201)
    gpath = f"Groups/{group['id']}"
    body = scim.call("patch", gpath, {"schemas": [PATCH], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": ann["id"]}, {"value": bob["id"]}]}]}, 200)
    assert {m["value"] for m in body["members"]} == {ann["id"], bob["id"]}
    body = scim.call("patch", gpath, {"schemas": [PATCH], "Operations": [
        {"op": "remove", "path": f'members[value eq "{ann["id"]}"]'}]}, 200)
    assert [m["value"] for m in body["members"]] == [bob["id"]]
    body = scim.call("patch", gpath, {"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "displayName", "value": "engineering"}]}, 200)
    assert body["displayName"] == "engineering"
    assert scim.call("get", f"Users/{bob['id']}")["groups"][0]["display"] == "engineering"


def _grant(api, group_id: str, status: int = 200, **body) -> dict:
    response = api.patch(f"/api/v1/scim-groups/{group_id}", data=json.dumps(body), content_type="application/json")
    assert response.status_code == status, response.content
    return response.json()


def test_groups_map_to_the_strongest_role_and_the_union_of_projects(org):
    organization, _, scim, api = org
    p1, p2 = ProjectFactory(organization=organization), ProjectFactory(organization=organization)
    ann = _user(scim, "ann@example.com")
    member = Membership.objects.get(organization=organization, user__email="ann@example.com")
    viewers = scim.call("post", "Groups", {"schemas": [GROUP], "displayName": "viewers",
                                           "members": [{"value": ann["id"]}]}, 201)
    member.refresh_from_db()
    assert member.role == Role.VIEWER and member.project_limit() == frozenset()  # an unmapped group grants nothing
    _grant(api, viewers["id"], role="viewer", projects=[p1.pk])
    member.refresh_from_db()
    assert member.role == Role.VIEWER and member.project_limit() == {p1.pk}
    devs = scim.call("post", "Groups", {"schemas": [GROUP], "displayName": "devs"}, 201)
    listed = api.get("/api/v1/scim-groups").json()["results"]
    assert {g["display_name"]: g["members"] for g in listed} == {"viewers": 1, "devs": 0}
    _grant(api, devs["id"], role="developer", projects=[p2.pk])
    scim.call("patch", f"Groups/{devs['id']}", {"schemas": [PATCH], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": ann["id"]}]}]}, 200)
    member.refresh_from_db()
    assert member.role == Role.DEVELOPER and member.project_limit() == {p1.pk, p2.pk}
    body = _grant(api, devs["id"], projects=[])
    assert body["role"] == "developer" and body["limited"] is False
    member.refresh_from_db()
    assert member.role == Role.DEVELOPER and member.project_limit() is None
    scim.call("delete", f"Groups/{devs['id']}", status=204)
    member.refresh_from_db()
    assert member.role == Role.VIEWER and member.project_limit() == {p1.pk}
    _grant(api, viewers["id"], status=400, role="owner")
    # The provider cannot grant: a role it sends is no attribute of a group, and is ignored.
    scim.call("put", f"Groups/{viewers['id']}", {"schemas": [GROUP], "displayName": "viewers",
                                                 "members": [{"value": ann["id"]}], "role": "admin"}, 200)
    member.refresh_from_db()
    assert member.role == Role.VIEWER
    assert AuditEvent.objects.filter(organization=organization, action="scim.group_grant").count() == 3
    assert AuditEvent.objects.filter(organization=organization, action="member.update",
                                     target_id=member.pk).count() >= 3


def test_an_admin_cannot_map_a_group_beyond_their_own_rights(org):
    organization, _, scim, _ = org
    project = ProjectFactory(organization=organization)
    group = scim.call("post", "Groups", {"schemas": [GROUP], "displayName": "g"}, 201)
    limited_admin = MembershipFactory(organization=organization, role=Role.ADMIN, projects=[project])
    _, secret = make_api_key(organization, role=Role.ADMIN, created_by=limited_admin)
    api = Client(headers={"Authorization": f"Bearer {secret}"})
    _grant(api, group["id"], status=403, role="developer", projects=[])
    _grant(api, group["id"], role="developer", projects=[project.pk])
    stranger = OrganizationFactory()
    _, other = make_api_key(stranger, role=Role.OWNER)
    _grant(Client(headers={"Authorization": f"Bearer {other}"}), group["id"], status=404, role="viewer")


def test_deactivation_ends_sessions_and_removes_access_and_reactivation_restores(org):
    organization, _, scim, _ = org
    ann = _user(scim, "ann@example.com")
    user = User.objects.get(email="ann@example.com")
    user.set_password(PASSWORD)
    user.save()
    browser = Client()
    assert browser.post("/console/login", {"email": user.email, "password": PASSWORD}).status_code == 302
    assert ConsoleSession.objects.filter(user=user).exists()
    body = scim.call("patch", f"Users/{ann['id']}", {"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "active", "value": False}]}, 200)
    assert body["active"] is False
    assert not Membership.objects.filter(organization=organization, user=user).exists()
    assert not ConsoleSession.objects.filter(user=user).exists()
    assert browser.get("/console/members").status_code == 302  # logged out
    assert scim.call("get", f"Users/{ann['id']}")["active"] is False
    body = scim.call("put", f"Users/{ann['id']}", {"schemas": [USER], "userName": "ann@example.com", "active": True},
                     200)
    assert body["active"] is True
    assert Membership.objects.filter(organization=organization, user=user).exists()
    actions = list(AuditEvent.objects.filter(organization=organization, target_id=ann["id"])
                   .order_by("created_at").values_list("action", flat=True))
    assert actions.count("scim.user_deactivate") == 1 and actions.count("scim.user_activate") == 2


def test_the_last_owner_cannot_be_deactivated_or_deleted(org):
    organization, owner, scim, _ = org
    linked = _user(scim, owner.user.email)  # an existing member is linked as is
    owner.refresh_from_db()
    assert owner.role == Role.OWNER and ScimUser.objects.get(pk=linked["id"]).membership_id == owner.pk
    for method, body in (("patch", {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]}),
                         ("delete", None)):
        refused = scim.call(method, f"Users/{linked['id']}", body, 409)
        assert refused["schemas"] == [ERROR] and "owner" in refused["detail"]
    assert Membership.objects.filter(pk=owner.pk, role=Role.OWNER).exists()
    # With a second owner, the first can go.
    MembershipFactory(organization=organization, role=Role.OWNER)
    scim.call("delete", f"Users/{linked['id']}", status=204)
    assert not Membership.objects.filter(pk=owner.pk).exists()
    scim.call("get", f"Users/{linked['id']}", status=404)


def test_discovery_endpoints(org):
    _, _, scim, _ = org
    config = scim.call("get", "ServiceProviderConfig", status=200)
    assert config["patch"]["supported"] is True and config["filter"]["supported"] is True
    types = scim.call("get", "ResourceTypes", status=200)
    assert {t["id"] for t in types["Resources"]} == {"User", "Group"}
    schemas = scim.call("get", "Schemas", status=200)
    assert {s["id"] for s in schemas["Resources"]} == {USER, GROUP}
    scim.call("get", f"Schemas/{USER}", status=200)
    scim.call("get", "Schemas/urn:nope", status=404)
    assert scim.call("get", "Users/scu_nope", status=404)["status"] == "404"


def test_console_page_makes_the_token_shows_it_once_maps_groups_and_revokes():
    client, owner = console_login()
    organization = owner.organization
    page = reverse("console:scim")
    assert "No SCIM token" in client.get(page).content.decode()
    assert client.post(page, {"action": "rotate"}).status_code == 302
    shown = client.get(page)
    assert "no-store" in shown["Cache-Control"]
    secret = shown.content.decode().split('id="scim-token-secret">')[1].split("<")[0]
    scim = Scim(secret)
    ann = _user(scim, "ann@example.com")
    assert secret not in client.get(page).content.decode()  # shown once
    project = ProjectFactory(organization=organization)
    group = scim.call("post", "Groups", {"schemas": [GROUP], "displayName": "ops", "members": [{"value": ann["id"]}]},
                      201)
    assert "ops" in client.get(page).content.decode()
    client.post(page, {"action": "group", "group": group["id"], "role": "developer", "projects": [project.pk]})
    member = Membership.objects.get(organization=organization, user__email="ann@example.com")
    assert member.role == Role.DEVELOPER and member.project_limit() == {project.pk}
    client.post(page, {"action": "revoke"})
    scim.call("get", "Users", status=401)
    # Not for a developer.
    other, _ = console_login(Role.DEVELOPER, organization=organization)
    assert other.get(page).status_code == 403


def test_an_admins_token_cannot_remove_an_owner():
    organization = OrganizationFactory()
    owner = MembershipFactory(organization=organization, role=Role.OWNER)
    MembershipFactory(organization=organization, role=Role.OWNER)  # not the last owner: the rights decide
    admin = MembershipFactory(organization=organization, role=Role.ADMIN)
    _, secret = make_api_key(organization, role=Role.ADMIN, created_by=admin)
    token = Client(headers={"Authorization": f"Bearer {secret}"}).post("/api/v1/organization/scim-token").json()
    assert token["role"] == "admin"
    scim = Scim(token["token"])
    linked = _user(scim, owner.user.email)
    scim.call("delete", f"Users/{linked['id']}", status=403)
    assert Membership.objects.filter(pk=owner.pk, role=Role.OWNER).exists()


def test_token_endpoints_are_in_the_openapi_schema_and_scim_is_not():
    schema = Client().get("/api/v1/schema?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"get", "post", "delete"} <= set(paths["/api/v1/organization/scim-token"])
    assert {"get", "patch"} <= set(paths["/api/v1/scim-groups/{id}"])
    assert not [path for path in paths if "scim/v2" in path]


def test_a_member_removed_in_the_console_reads_inactive_and_comes_back_with_active_true(org):
    organization, _, scim, api = org
    ann = _user(scim, "ann@example.com")
    member = Membership.objects.get(organization=organization, user__email="ann@example.com")
    assert api.delete(f"/api/v1/members/{member.pk}").status_code == 204
    assert scim.call("get", f"Users/{ann['id']}")["active"] is False
    body = scim.call("patch", f"Users/{ann['id']}", {"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "active", "value": True}]}, 200)
    assert body["active"] is True
    assert Membership.objects.filter(organization=organization, user__email="ann@example.com").exists()
