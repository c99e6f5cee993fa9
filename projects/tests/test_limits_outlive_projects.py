"""A project limit is stored explicitly: deleting the last project of a limited member, key or invitation
leaves it limited to nothing (it sees none), never organization-wide (issue 11, item 2)."""

from __future__ import annotations

import re

import pytest

from alerts.tests.factories import AlertRuleFactory
from billing.tests.factories import BudgetFactory
from deployments.tests.factories import DeploymentFactory
from projects.models import AuditEvent, Invitation, Membership, Project
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
def org_with_owner(make_client):
    org = OrganizationFactory()
    owner = MembershipFactory(organization=org, role=Role.OWNER)
    return org, owner, make_client(make_api_key(org, role=Role.OWNER)[1])


def _delete_project(owner_client, project: Project) -> None:
    assert owner_client.delete(f"/api/v1/projects/{project.id}").status_code == 204


@pytest.mark.parametrize("credential", ["session", "api_key"])
def test_limited_principal_whose_projects_are_deleted_sees_nothing(credential, org_with_owner, make_client,
                                                                   session_client):
    org, _, owner_client = org_with_owner
    gone = ProjectFactory(organization=org, name="gone")
    other = ProjectFactory(organization=org, name="other")
    DeploymentFactory(organization=org, project=other)
    AlertRuleFactory(organization=org, project=other)
    BudgetFactory(organization=org, project=other)
    if credential == "api_key":
        client = make_client(make_api_key(org, role=Role.ADMIN, projects=[gone])[1])
    else:
        client = session_client(MembershipFactory(organization=org, role=Role.ADMIN, projects=[gone]).user)
    _delete_project(owner_client, gone)

    for path in ("/api/v1/projects", "/api/v1/deployments", "/api/v1/alert-rules", "/api/v1/alerts",
                 "/api/v1/budgets"):
        response = client.get(path)
        assert response.status_code in (200, 403), (path, response.content)
        if response.status_code == 200:
            assert response.json()["results"] == [], path
    assert client.get(f"/api/v1/projects/{other.id}").status_code == 404
    assert client.post("/api/v1/projects", {"name": "escape"}, format="json").status_code == 403
    # Handing out organization-wide access needs a principal that has it.
    response = client.post("/api/v1/invitations", {"email": "x@example.com", "role": "viewer"}, format="json")
    assert response.status_code == 403


def test_member_and_invitation_stay_limited_and_show_it(org_with_owner):
    org, _, owner_client = org_with_owner
    gone = ProjectFactory(organization=org)
    member = MembershipFactory(organization=org, role=Role.DEVELOPER, projects=[gone])
    everywhere = MembershipFactory(organization=org, role=Role.DEVELOPER)
    invitation = InvitationFactory(organization=org, projects=[gone])
    _delete_project(owner_client, gone)

    body = owner_client.get(f"/api/v1/members/{member.id}").json()
    assert body["projects"] == [] and body["limited"] is True
    assert owner_client.get(f"/api/v1/members/{everywhere.id}").json()["limited"] is False
    listed = {i["id"]: i for i in owner_client.get("/api/v1/invitations").json()["results"]}
    assert listed[invitation.id]["projects"] == [] and listed[invitation.id]["limited"] is True
    # The member filter "who can see this project" no longer counts the emptied member as everywhere.
    other = ProjectFactory(organization=org)
    ids = {m["id"] for m in owner_client.get("/api/v1/members", {"project": other.id}).json()["results"]}
    assert everywhere.id in ids and member.id not in ids


def test_accepted_invitation_whose_projects_are_gone_gives_a_member_who_sees_nothing(org_with_owner, anon,
                                                                                    session_client):
    org, _, owner_client = org_with_owner
    gone = ProjectFactory(organization=org)
    ProjectFactory(organization=org)
    invitation = InvitationFactory(organization=org, projects=[gone], token="tok-" + "x" * 40)
    _delete_project(owner_client, gone)
    response = anon.post("/api/v1/invitations/accept", {"token": "tok-" + "x" * 40,
                                                         "password": "a-long-enough-passphrase"}, format="json")
    assert response.status_code == 200, response.content
    member = Membership.objects.get(organization=org, user__email=invitation.email)
    assert member.limited_to_projects is True
    assert session_client(member.user).get("/api/v1/projects").json()["results"] == []


def test_unlimited_grant_stays_the_meaning_of_an_empty_list(org_with_owner):
    org, _, owner_client = org_with_owner
    project = ProjectFactory(organization=org)
    member = MembershipFactory(organization=org, role=Role.DEVELOPER)
    limited = owner_client.patch(f"/api/v1/members/{member.id}", {"projects": [project.id]}, format="json").json()
    assert limited["projects"] == [project.id] and limited["limited"] is True
    freed = owner_client.patch(f"/api/v1/members/{member.id}", {"projects": []}, format="json").json()
    assert freed["projects"] == [] and freed["limited"] is False
    created = owner_client.post("/api/v1/invitations", {"email": "y@example.com", "role": "viewer",
                                                        "projects": [project.id]}, format="json").json()
    assert created["limited"] is True
    assert Invitation.objects.get(pk=created["id"]).limited_to_projects is True


@pytest.mark.parametrize("credential", ["session", "api_key"])
def test_limited_principal_cannot_delete_its_own_project(credential, org_with_owner, make_client, session_client):
    org, _, _ = org_with_owner
    mine = ProjectFactory(organization=org)
    if credential == "api_key":
        client = make_client(make_api_key(org, role=Role.DEVELOPER, projects=[mine])[1])
    else:
        client = session_client(MembershipFactory(organization=org, role=Role.DEVELOPER, projects=[mine]).user)
    response = client.delete(f"/api/v1/projects/{mine.id}")
    assert response.status_code == 403
    assert response["Content-Type"].startswith("application/problem+json")
    assert Project.objects.filter(pk=mine.pk).exists()


def test_console_refuses_and_hides_project_deletion_for_limited_members():
    from django.urls import reverse

    from tests.support import console_login

    org = OrganizationFactory()
    mine = ProjectFactory(organization=org)
    client, _ = console_login(Role.DEVELOPER, organization=org, projects=[mine])
    listing = client.get(reverse("console:home")).content.decode()
    assert reverse("console:project-delete", args=[mine.id]) not in listing
    assert client.post(reverse("console:project-delete", args=[mine.id])).status_code == 403
    assert Project.objects.filter(pk=mine.pk).exists()
    # Typed in by hand, the pages that could only end in that refusal are refused up front.
    assert client.get(reverse("console:project-delete", args=[mine.id])).status_code == 403
    assert client.get(reverse("console:project-create")).status_code == 403


def test_project_deletion_audits_who_lost_access(org_with_owner):
    org, _, owner_client = org_with_owner
    gone, kept = ProjectFactory(organization=org), ProjectFactory(organization=org)
    only_gone = MembershipFactory(organization=org, role=Role.VIEWER, projects=[gone])
    both = MembershipFactory(organization=org, role=Role.VIEWER, projects=[gone, kept])
    MembershipFactory(organization=org, role=Role.VIEWER, projects=[kept])
    key, _ = make_api_key(org, role=Role.VIEWER, projects=[gone])
    invitation = InvitationFactory(organization=org, projects=[gone, kept])
    _delete_project(owner_client, gone)

    event = AuditEvent.objects.get(organization=org, action="project.delete", target_id=gone.id)
    lost = event.changes["access_lost"]
    assert sorted(lost["members"]) == sorted([only_gone.id, both.id])
    assert lost["api_keys"] == [key.id]
    assert lost["invitations"] == [invitation.id]
    # Those left with no project now see none (not the whole organization), and the event says so.
    now_none = event.changes["now_without_projects"]
    assert now_none == {"members": [only_gone.id], "api_keys": [key.id], "invitations": []}


def test_billing_member_whose_projects_are_deleted_hears_of_no_budget(org_with_owner):
    from billing.selectors import budget_notice_recipients

    org, owner, owner_client = org_with_owner
    gone = ProjectFactory(organization=org)
    billing = MembershipFactory(organization=org, role=Role.BILLING, projects=[gone])
    organization_budget = BudgetFactory(organization=org)
    _delete_project(owner_client, gone)
    recipients = budget_notice_recipients(budget=organization_budget)
    assert owner.user.email in recipients
    assert billing.user.email not in recipients


def test_console_member_edit_does_not_turn_an_emptied_limit_into_every_project(org_with_owner):
    from django.test import Client
    from django.urls import reverse

    org, owner, owner_client = org_with_owner
    gone = ProjectFactory(organization=org)
    member = MembershipFactory(organization=org, role=Role.DEVELOPER, projects=[gone])
    _delete_project(owner_client, gone)
    client = Client()
    client.force_login(owner.user)
    assert "No projects (all deleted)" in client.get(reverse("console:members")).content.decode()
    # Changing only the role keeps the member limited; granting every project is an explicit choice.
    form = client.get(reverse("console:member-edit", args=[member.id])).content.decode()
    assert re.search(r'name="scope" value="some"[^>]*checked', form)
    response = client.post(reverse("console:member-edit", args=[member.id]), {"role": Role.VIEWER, "scope": "some"})
    assert response.status_code == 400
    member.refresh_from_db()
    assert member.limited_to_projects is True and member.role == Role.DEVELOPER
    response = client.post(reverse("console:member-edit", args=[member.id]), {"role": Role.VIEWER, "scope": "all"})
    assert response.status_code == 302
    member.refresh_from_db()
    assert member.limited_to_projects is False and member.role == Role.VIEWER
