"""The web console, driven through Django's test client: pages, forms, htmx row swaps, tenancy."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import URLPattern, reverse

from controlplane import console_urls
from projects.console.base import ConsoleView, OrganizationConsoleView
from projects.models import ApiKey, AuditEvent, Invitation, Membership, Project
from projects.roles import Role
from projects.tests.factories import (
    PASSWORD,
    MembershipFactory,
    OrganizationFactory,
    ProjectFactory,
    UserFactory,
    make_api_key,
)
from tests.support import console_login as logged_in
from tests.support import console_page as page

pytestmark = pytest.mark.django_db

SIGNUP = {"name": "Ada", "email": "ada@example.com", "password": "a-long-enough-passphrase",
          "organization_name": "Acme", "site": "global", "country": "de"}


# --- login, logout, signup --------------------------------------------------------------------------
def test_console_requires_login():
    response = Client().get(reverse("console:home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("console:login"))


def test_login_ok_goes_to_the_next_page():
    member = MembershipFactory()
    client = Client()
    response = client.post(reverse("console:login"),
                           {"email": member.user.email.upper(), "password": PASSWORD, "next": "/console/members"})
    assert response.status_code == 302
    assert response["Location"] == "/console/members"
    assert member.organization.name in page(client, "members")


def test_login_refuses_an_offsite_next():
    member = MembershipFactory()
    response = Client().post(reverse("console:login"),
                             {"email": member.user.email, "password": PASSWORD, "next": "https://evil.example/"})
    assert response["Location"] == reverse("console:home")


def test_login_failure_shows_a_message_and_stays_logged_out():
    member = MembershipFactory()
    client = Client()
    response = client.post(reverse("console:login"), {"email": member.user.email, "password": "wrong"})
    assert response.status_code == 400
    assert "not correct" in response.content.decode()
    assert client.get(reverse("console:home")).status_code == 302


def test_login_locks_out_after_five_failures_even_with_the_right_password():
    member = MembershipFactory()
    client = Client()
    for _ in range(5):
        client.post(reverse("console:login"), {"email": member.user.email, "password": "wrong"})
    response = client.post(reverse("console:login"), {"email": member.user.email, "password": PASSWORD})
    assert response.status_code == 400
    assert "Too many failed logins" in response.content.decode()
    assert client.get(reverse("console:home")).status_code == 302


def test_logout_is_post_only():
    client, _ = logged_in()
    assert client.get(reverse("console:logout")).status_code == 405
    assert client.post(reverse("console:logout")).status_code == 302
    assert client.get(reverse("console:home")).status_code == 302


def test_signup_creates_the_organization_and_logs_in():
    client = Client()
    assert "Create your organization" in page(client, "signup")
    response = client.post(reverse("console:signup"), SIGNUP, follow=True)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Welcome to mqcloud" in body
    assert "Default project" in body
    assert Membership.objects.get(user__email="ada@example.com").role == Role.OWNER


def test_signup_shows_service_refusals_on_the_form():
    MembershipFactory(user__email="ada@example.com")
    response = Client().post(reverse("console:signup"), SIGNUP)
    assert response.status_code == 400
    assert "already exists" in response.content.decode()


# --- organization switcher --------------------------------------------------------------------------
def test_switching_organization_changes_what_the_console_shows():
    client, first = logged_in()
    second = MembershipFactory(user=first.user, role=Role.VIEWER, organization__name="Second Org")
    ProjectFactory(organization=second.organization, name="only-in-second")
    assert "only-in-second" not in page(client, "home")
    response = client.post(reverse("console:organization-switch"), {"organization_id": second.organization_id})
    assert response.status_code == 302
    assert client.session["organization_id"] == second.organization_id
    assert "only-in-second" in page(client, "home")


def test_switching_to_a_stranger_organization_is_404():
    client, _ = logged_in()
    stranger = OrganizationFactory()
    response = client.post(reverse("console:organization-switch"), {"organization_id": stranger.id})
    assert response.status_code == 404


def test_a_left_organization_in_the_session_falls_back_to_the_first():
    client, member = logged_in()
    session = client.session
    session["organization_id"] = "org_gone"
    session.save()
    assert member.organization.name in page(client, "home")
    assert client.session["organization_id"] == member.organization_id


# --- projects ---------------------------------------------------------------------------------------
def test_projects_empty_state_then_create_edit_delete():
    client, member = logged_in()
    assert "No projects yet" in page(client, "home")
    response = client.post(reverse("console:project-create"), {"name": "fleet", "description": "trucks"})
    assert response.status_code == 302
    project = Project.objects.get(organization=member.organization, name="fleet")
    assert "fleet" in page(client, "home")
    response = client.post(reverse("console:project-edit", args=[project.id]), {"name": "fleet-2", "description": ""})
    assert response.status_code == 302
    assert "fleet-2" in page(client, "project-delete", project.id)
    response = client.post(reverse("console:project-delete", args=[project.id]))
    assert response.status_code == 302
    assert not Project.objects.filter(pk=project.pk).exists()
    actions = set(AuditEvent.objects.filter(organization=member.organization).values_list("action", flat=True))
    assert {"project.create", "project.update", "project.delete"} <= actions


def test_duplicate_project_name_is_a_form_error():
    client, member = logged_in()
    ProjectFactory(organization=member.organization, name="fleet")
    response = client.post(reverse("console:project-create"), {"name": "fleet"})
    assert response.status_code == 400
    assert "already exists" in response.content.decode()


def test_project_delete_refused_by_the_service_shows_its_message(monkeypatch):
    client, member = logged_in()
    project = ProjectFactory(organization=member.organization)
    monkeypatch.setattr("deployments.selectors.deployment_count_for_project", lambda *, project_id: 2)
    response = client.post(reverse("console:project-delete", args=[project.id]))
    assert response.status_code == 400
    assert "still has 2 deployment(s)" in response.content.decode()
    assert Project.objects.filter(pk=project.pk).exists()


def test_viewer_cannot_create_projects():
    client, _ = logged_in(Role.VIEWER)
    assert "New project" not in page(client, "home")
    assert client.get(reverse("console:project-create")).status_code == 403
    assert client.post(reverse("console:project-create"), {"name": "x"}).status_code == 403


def test_member_limited_to_a_project_sees_only_it():
    org = OrganizationFactory()
    mine, other = ProjectFactory(organization=org, name="mine"), ProjectFactory(organization=org, name="theirs")
    client, _ = logged_in(Role.DEVELOPER, organization=org, projects=[mine])
    body = page(client, "home")
    assert "mine" in body and "theirs" not in body
    assert client.get(reverse("console:project-edit", args=[other.id])).status_code == 404
    assert client.get(reverse("console:project-edit", args=[mine.id])).status_code == 200


def test_other_organizations_objects_are_404():
    client, member = logged_in()
    stranger_org = OrganizationFactory()
    project = ProjectFactory(organization=stranger_org)
    stranger = MembershipFactory(organization=stranger_org, role=Role.DEVELOPER)
    key, _ = make_api_key(stranger_org, role=Role.VIEWER)
    invitation = Invitation.objects.create(organization=stranger_org, email="x@example.com", role=Role.VIEWER,
                                           token_hash="f" * 64, token_encrypted="t", expires_at="2100-01-01T00:00Z")
    for name, args in [("project-edit", [project.id]), ("project-delete", [project.id]),
                       ("member-edit", [stranger.id])]:
        assert client.get(reverse(f"console:{name}", args=args)).status_code == 404, name
        assert client.post(reverse(f"console:{name}", args=args), {"name": "x", "role": "viewer"}).status_code == 404
    for name, obj in [("member-remove", stranger), ("api-key-revoke", key), ("invitation-revoke", invitation)]:
        assert client.post(reverse(f"console:{name}", args=[obj.id])).status_code == 404, name
    assert Membership.objects.filter(pk=stranger.pk).exists()
    assert ApiKey.objects.get(pk=key.pk).revoked_at is None
    assert Invitation.objects.get(pk=invitation.pk).status == Invitation.Status.PENDING


# --- members and invitations ------------------------------------------------------------------------
def test_members_list_shows_roles_and_project_limits():
    client, member = logged_in()
    project = ProjectFactory(organization=member.organization, name="limited-one")
    MembershipFactory(organization=member.organization, role=Role.DEVELOPER, projects=[project],
                      user__email="dev@example.com")
    body = page(client, "members")
    assert "dev@example.com" in body and "limited-one" in body and "Developer" in body


def test_member_role_form_offers_only_grantable_roles():
    client, admin = logged_in(Role.ADMIN)
    dev = MembershipFactory(organization=admin.organization, role=Role.DEVELOPER)
    body = page(client, "member-edit", dev.id)
    assert 'value="admin"' in body and 'value="owner"' not in body
    response = client.post(reverse("console:member-edit", args=[dev.id]), {"role": Role.OWNER})
    assert response.status_code == 400
    assert Membership.objects.get(pk=dev.pk).role == Role.DEVELOPER
    project = ProjectFactory(organization=admin.organization)
    response = client.post(reverse("console:member-edit", args=[dev.id]),
                           {"role": Role.VIEWER, "projects": [project.id]})
    assert response.status_code == 302
    dev.refresh_from_db()
    assert dev.role == Role.VIEWER and list(dev.projects.all()) == [project]


def test_developer_cannot_manage_members():
    client, dev = logged_in(Role.DEVELOPER)
    other = MembershipFactory(organization=dev.organization, role=Role.VIEWER)
    assert "Invite someone" not in page(client, "members")
    assert client.get(reverse("console:member-edit", args=[other.id])).status_code == 403
    assert client.get(reverse("console:invitation-create")).status_code == 403
    assert client.post(reverse("console:member-remove", args=[other.id])).status_code == 403


def test_remove_member_with_htmx_swaps_the_row_away():
    client, owner = logged_in()
    other = MembershipFactory(organization=owner.organization, role=Role.VIEWER)
    response = client.post(reverse("console:member-remove", args=[other.id]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    body = response.content.decode()
    assert "<tr" not in body and 'hx-swap-oob="true"' in body and "no longer a member" in body
    assert not Membership.objects.filter(pk=other.pk).exists()


def test_leaving_an_organization_redirects_home():
    client, member = logged_in(Role.VIEWER)
    MembershipFactory(organization=member.organization, role=Role.OWNER)
    other = MembershipFactory(user=member.user, organization__name="Still here")
    response = client.post(reverse("console:member-remove", args=[member.id]), HTTP_HX_REQUEST="true")
    assert response["HX-Redirect"] == reverse("console:home")
    body = page(client, "home")
    assert "You left" in body and other.organization.name in body


def test_last_owner_cannot_leave_and_the_row_stays():
    client, owner = logged_in()
    response = client.post(reverse("console:member-remove", args=[owner.id]), HTTP_HX_REQUEST="true")
    # A refusal: htmx leaves the row as it is and the console's script shows the message next to the button.
    assert response.status_code == 409
    body = response.content.decode()
    assert 'role="alert"' in body and "at least one owner" in body
    assert Membership.objects.filter(pk=owner.pk).exists()


def test_invite_then_revoke(django_capture_on_commit_callbacks):
    client, owner = logged_in()
    project = ProjectFactory(organization=owner.organization, name="alpha")
    with django_capture_on_commit_callbacks():
        response = client.post(reverse("console:invitation-create"),
                               {"email": "New@Example.com", "role": Role.DEVELOPER, "projects": [project.id]})
    assert response.status_code == 302
    invitation = Invitation.objects.get(organization=owner.organization)
    assert invitation.email == "new@example.com"
    body = page(client, "members")
    assert "new@example.com" in body and "Pending" in body
    response = client.post(reverse("console:invitation-revoke", args=[invitation.id]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "Revoked" in response.content.decode()
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.REVOKED
    # Revoking again: the service refuses and the plain form shows it as a message.
    response = client.post(reverse("console:invitation-revoke", args=[invitation.id]), follow=True)
    assert "already revoked" in response.content.decode()


def test_invitation_accept_for_a_new_person(django_capture_on_commit_callbacks):
    owner_client, owner = logged_in()
    with django_capture_on_commit_callbacks():
        owner_client.post(reverse("console:invitation-create"), {"email": "new@example.com", "role": Role.VIEWER})
    token = Invitation.objects.get().token_encrypted
    client = Client()
    body = page(client, "invitation-accept", token)
    assert owner.organization.name in body and "Choose a password" in body
    response = client.post(reverse("console:invitation-accept", args=[token]),
                           {"name": "Newcomer", "password": "another-long-passphrase"})
    assert response.status_code == 302
    assert client.session["organization_id"] == owner.organization_id
    assert "You joined" in page(client, "home")


def test_invitation_accept_for_an_existing_account_needs_its_password():
    owner_client, owner = logged_in()
    existing = MembershipFactory(user__email="old@example.com")
    owner_client.post(reverse("console:invitation-create"), {"email": "old@example.com", "role": Role.VIEWER})
    token = Invitation.objects.get(organization=owner.organization).token_encrypted
    client = Client()
    assert "Log in" in page(client, "invitation-accept", token)
    response = client.post(reverse("console:invitation-accept", args=[token]), {"password": "wrong"})
    assert response.status_code == 400 and "not correct" in response.content.decode()
    response = client.post(reverse("console:invitation-accept", args=[token]), {"password": PASSWORD})
    assert response.status_code == 302
    assert Membership.objects.filter(user=existing.user, organization=owner.organization).exists()


def test_unknown_invitation_token_is_404():
    assert Client().get(reverse("console:invitation-accept", args=["nope"])).status_code == 404


# --- API keys ---------------------------------------------------------------------------------------
def test_api_key_secret_is_shown_once_and_never_listed():
    client, owner = logged_in()
    response = client.post(reverse("console:api-key-create"), {"name": "ci", "role": Role.DEVELOPER})
    assert response.status_code == 302  # post/redirect/get: see test_console_key_secrets
    response = client.get(response["Location"])
    assert "no-store" in response["Cache-Control"]
    body = response.content.decode()
    key = ApiKey.objects.get(organization=owner.organization, name="ci")
    secret = body.split('id="api-key-secret">')[1].split("<")[0]
    assert secret.startswith(f"mqc_{key.prefix}_")
    listing = page(client, "api-keys")
    assert f"mqc_{key.prefix}" in listing
    assert secret not in listing
    assert Client().get("/api/v1/organization", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 200


def test_api_key_role_cannot_exceed_your_own_and_revoke_swaps_the_row():
    client, dev = logged_in(Role.DEVELOPER)
    assert 'value="owner"' not in page(client, "api-key-create")
    assert client.post(reverse("console:api-key-create"), {"name": "x", "role": Role.OWNER}).status_code == 400
    client.post(reverse("console:api-key-create"), {"name": "ci", "role": Role.VIEWER,
                                                    "expires_at": "2099-01-01T10:00"})
    key = ApiKey.objects.get(organization=dev.organization)
    assert key.expires_at.year == 2099
    response = client.post(reverse("console:api-key-revoke", args=[key.id]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert f'id="api-key-{key.id}"' in response.content.decode() and "Revoked" in response.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_viewer_has_no_api_keys_page():
    client, _ = logged_in(Role.VIEWER)
    assert client.get(reverse("console:api-keys")).status_code == 403


# --- audit log and outbox ---------------------------------------------------------------------------
def test_audit_log_lists_filters_and_pages():
    client, owner = logged_in()
    for n in range(55):
        client.post(reverse("console:project-create"), {"name": f"p{n}"})
    create_cell = '<span class="badge badge-action">project.create</span>'
    body = page(client, "audit")
    assert body.count(create_cell) == 50
    assert "Older" in body
    older = client.get(reverse("console:audit") + "?page=2").content.decode()
    assert older.count(create_cell) == 5 and "Newer" in older
    filtered = client.get(reverse("console:audit") + "?action=member").content.decode()
    assert "No events" in filtered
    assert "Enter a valid date" in client.get(reverse("console:audit") + "?since=yesterday").content.decode()


def test_audit_log_is_403_for_a_viewer():
    client, _ = logged_in(Role.VIEWER)
    response = client.get(reverse("console:audit"))
    assert response.status_code == 403
    assert "does not allow" in response.content.decode()
    assert "Audit log" not in page(client, "home")


def test_outbox_is_404_unless_embedded(settings, tmp_path):
    client, member = logged_in()
    settings.EMBEDDED = False
    assert client.get(reverse("console:outbox")).status_code == 404
    settings.EMBEDDED = True
    settings.EMAIL_FILE_PATH = str(tmp_path)
    settings.EMAIL_BACKEND = "controlplane.mail.OutboxEmailBackend"
    assert "No mail yet" in page(client, "outbox")
    from django.core.mail import send_mail

    send_mail("Hello there", "Open http://127.0.0.1:8000/console/billing/account", None, [member.user.email])
    partial = client.get(reverse("console:outbox"), HTTP_HX_REQUEST="true").content.decode()
    assert "Hello there" in partial and '<a href="http://127.0.0.1:8000/console/billing/account"' in partial
    assert "<html" not in partial


# --- the base -------------------------------------------------------------------------------------
PUBLIC_PAGES = {"login", "login-two-factor", "logout", "signup", "invitation-accept", "password-reset",
                "password-reset-confirm", "login-sso", "sso-callback", "sso-domain-verify"}


def test_every_console_page_derives_from_the_console_base():
    for pattern in console_urls.urlpatterns:
        assert isinstance(pattern, URLPattern)
        view_class = pattern.callback.view_class
        expected = ConsoleView if pattern.name in PUBLIC_PAGES else OrganizationConsoleView
        assert issubclass(view_class, expected), pattern.name


def test_the_base_refuses_pages_that_bypass_it():
    with pytest.raises(TypeError):
        type("Sneaky", (OrganizationConsoleView,), {"dispatch": lambda self, request: None})
    with pytest.raises(TypeError):
        type("Sneaky", (OrganizationConsoleView,), {"prepare": lambda self, request: None})


def test_forms_need_csrf():
    member = MembershipFactory()
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("console:login"), {"email": member.user.email, "password": PASSWORD})
    assert response.status_code == 403


def test_a_user_without_organization_gets_a_clear_page():
    client = Client()
    client.force_login(UserFactory())
    response = client.get(reverse("console:home"))
    assert response.status_code == 403
    assert "not a member of any organization" in response.content.decode()


def test_invitation_password_is_required_not_optional_for_a_new_account():
    from projects.console.forms import InvitationAcceptForm

    for new_account in (True, False):
        form = InvitationAcceptForm({"name": "x"}, new_account=new_account, signed_in=False)
        assert form.fields["password"].required
        assert not form.is_valid() and "password" in form.errors
    assert "password" not in InvitationAcceptForm({}, new_account=True, signed_in=True).fields
