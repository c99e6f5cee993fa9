"""The embedded default's mail outbox: a member reads only their organization's mail, without other people's
one-time links; operators read all of it on the ops site."""

from __future__ import annotations

import pytest
from django.core.mail import send_mail
from django.test import Client

from projects.emails import invitation_accept_url, send_invitation_email
from projects.models import Membership
from projects.roles import Role
from projects.tests.factories import (
    PASSWORD,
    InvitationFactory,
    MembershipFactory,
    OrganizationFactory,
    ProjectFactory,
    operator_user,
)
from tests.support import console_url

pytestmark = pytest.mark.django_db

RESET_TOKEN = "cz1k3q-5f0c2a9d8e7b6c5d4e3f2a1b0c9d8e7f"


@pytest.fixture
def outbox(settings, tmp_path):
    settings.EMBEDDED = True
    settings.EMAIL_FILE_PATH = str(tmp_path)
    settings.EMAIL_BACKEND = "controlplane.mail.OutboxEmailBackend"
    return tmp_path


def console_as(membership: Membership) -> Client:
    client = Client()
    client.force_login(membership.user)
    client.post(console_url("organization-switch"), {"organization_id": membership.organization_id})
    return client


def outbox_html(client: Client) -> str:
    page = client.get(console_url("outbox"))
    assert page.status_code == 200
    partial = client.get(console_url("outbox"), HTTP_HX_REQUEST="true")
    assert partial.status_code == 200
    return page.content.decode() + partial.content.decode()


def invite(organization, email: str, role: str = Role.ADMIN, **fields):
    invitation = InvitationFactory(organization=organization, email=email, role=role, **fields)
    send_invitation_email(invitation=invitation)
    return invitation


def test_a_developer_of_another_organization_cannot_take_an_invitation(outbox, anon):
    org_a, org_b = OrganizationFactory(name="Alpha"), OrganizationFactory(name="Bravo")
    owner_a = MembershipFactory(organization=org_a, role=Role.OWNER)
    developer_b = MembershipFactory(organization=org_b, role=Role.DEVELOPER)
    invitation = invite(org_a, "newcomer@example.com")

    seen_by_b = outbox_html(console_as(developer_b))
    assert "Alpha" not in seen_by_b and "newcomer@example.com" not in seen_by_b
    assert invitation.token_encrypted not in seen_by_b and "No mail yet" in seen_by_b

    # The owner of A, who could have sent it, sees the link to pass on.
    assert invitation_accept_url(invitation.token_encrypted) in outbox_html(console_as(owner_a))
    # Without the token, B's developer has nothing to accept A's invitation with.
    response = anon.post("/api/v1/invitations/accept", {"token": "guessed", "password": PASSWORD}, format="json")
    assert response.status_code == 404
    assert not Membership.objects.filter(organization=org_a, user__email="newcomer@example.com").exists()


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.BILLING, Role.VIEWER])
def test_members_below_admin_see_their_invitations_without_the_link(outbox, role):
    org = OrganizationFactory(name="Alpha")
    member = MembershipFactory(organization=org, role=role)
    invitation = invite(org, "newcomer@example.com")
    seen = outbox_html(console_as(member))
    assert "You are invited to Alpha" in seen and "newcomer@example.com" in seen
    assert invitation.token_encrypted not in seen
    assert "/console/invitations/***" in seen
    # A masked link is text, not a link that only leads to "no longer valid".
    assert 'href="http://127.0.0.1:8000/console/invitations/***"' not in seen and "invitations/***</a>" not in seen


def test_an_admin_sees_only_links_they_could_have_sent(outbox):
    org = OrganizationFactory()
    project = ProjectFactory(organization=org)
    admin = MembershipFactory(organization=org, role=Role.ADMIN)
    limited_admin = MembershipFactory(organization=org, role=Role.ADMIN, projects=[project])
    to_owner = invite(org, "future-owner@example.com", role=Role.OWNER)
    to_admin = invite(org, "future-admin@example.com", role=Role.ADMIN)
    seen = outbox_html(console_as(admin))
    assert to_admin.token_encrypted in seen
    # An admin who took an owner's invitation would become an owner.
    assert to_owner.token_encrypted not in seen and "future-owner@example.com" in seen
    seen_limited = outbox_html(console_as(limited_admin))
    assert to_admin.token_encrypted not in seen_limited and to_owner.token_encrypted not in seen_limited


def test_mail_to_a_member_of_two_organizations(outbox):
    org_a, org_b = OrganizationFactory(name="Alpha"), OrganizationFactory(name="Bravo")
    owner_a = MembershipFactory(organization=org_a, role=Role.OWNER)
    owner_b = MembershipFactory(organization=org_b, role=Role.OWNER)
    shared = MembershipFactory(organization=org_a, role=Role.DEVELOPER)
    invitation = invite(org_b, shared.user.email, role=Role.DEVELOPER)

    seen_by_a = outbox_html(console_as(owner_a))
    assert "You are invited to Bravo" in seen_by_a  # addressed to A's member: acceptable for its text
    assert invitation.token_encrypted not in seen_by_a  # but B's link is B's
    assert invitation.token_encrypted in outbox_html(console_as(owner_b))
    # The one it is addressed to may use it, from whichever organization they look.
    assert invitation.token_encrypted in outbox_html(console_as(shared))


def test_inviting_an_address_does_not_open_its_other_mail(outbox):
    org_a, org_c = OrganizationFactory(name="Alpha"), OrganizationFactory(name="Charlie")
    owner_a = MembershipFactory(organization=org_a, role=Role.OWNER)
    victim = MembershipFactory(organization=org_c, role=Role.BILLING)
    send_mail("Payment failed for Charlie", "Invoice INV-1 is unpaid.", None, [victim.user.email])
    invitation = invite(org_a, victim.user.email, role=Role.VIEWER)
    seen = outbox_html(console_as(owner_a))
    assert "Payment failed for Charlie" not in seen
    assert "You are invited to Alpha" in seen and invitation.token_encrypted in seen


def test_password_reset_links_are_masked_even_for_owners_and_the_recipient(outbox):
    org = OrganizationFactory()
    owner = MembershipFactory(organization=org, role=Role.OWNER)
    member = MembershipFactory(organization=org, role=Role.DEVELOPER)
    send_mail("Reset your mqcloud password",
              f"Open http://127.0.0.1:8000/console/password/reset/dXNyXzE/{RESET_TOKEN}/ to choose a new one.\n"
              f"Or http://127.0.0.1:8000/console/password/reset?token={RESET_TOKEN}&email=x%40example.com.",
              None, [member.user.email])
    for viewer in (owner, member):
        seen = outbox_html(console_as(viewer))
        assert "Reset your mqcloud password" in seen
        assert RESET_TOKEN not in seen
        assert "/console/password/reset/dXNyXzE/***/" in seen and "reset?token=***&amp;email=" in seen


def test_strangers_mail_is_not_listed_and_recipients_outside_the_organization_are_not_named(outbox):
    org = OrganizationFactory()
    owner = MembershipFactory(organization=org, role=Role.OWNER)
    send_mail("Not for you", "Someone else's mail.", None, ["stranger@example.com"])
    send_mail("Team mail", "Hello.", None, [owner.user.email, "outsider@example.net"])
    seen = outbox_html(console_as(owner))
    assert "Not for you" not in seen and "Team mail" in seen
    assert "outsider@example.net" not in seen and owner.user.email in seen


@pytest.mark.parametrize(("text", "masked"), [
    ("https://h.example/console/invitations/Zx9_-a8Bq3cD4eF5gH6iJ7kL8mN9oP0qR1sT2uV3wX4", "https://h.example/console/invitations/***"),
    ("see https://h.example/r?token=abc&next=/home.", "see https://h.example/r?token=***&next=/home."),
    ("(https://h.example/a/0123456789abcdef0123/b)", "(https://h.example/a/***/b)"),
    ("https://user:hunter2@h.example/x", "https://user:***@h.example/x"),
    ("https://h.example/reset/eyJ1IjoidXNyXzEifQ:1vQx7a:Xk3d9Lq0PzYbWc1TmRn2Aa5Eo8/", "https://h.example/reset/***/"),
    ("https://h.example/confirm#access_token=abc&state=x", "https://h.example/confirm#access_token=***&state=x"),
    ("https://h.example/console/deployments/dep_k3j4h5g6f7d8s9a0q1w2", None),
    ("https://h.example/console/billing/account#payment-method", None),
    ("https://h.example/console/invoices/inv_abcdefghij0123456789?page=2", None),
])
def test_mask_link_secrets(text, masked):
    from controlplane.mail import mask_link_secrets

    assert mask_link_secrets(text) == (masked or text)


def test_operators_read_every_mail_unmasked_on_the_ops_site(outbox, client):
    org = OrganizationFactory()
    invitation = invite(org, "newcomer@example.com")
    send_mail("Reset your mqcloud password", f"http://127.0.0.1:8000/console/password/reset/x/{RESET_TOKEN}/",
              None, ["someone@example.com"])
    member = MembershipFactory(organization=org, role=Role.OWNER)
    client.force_login(member.user)
    assert client.get("/ops/outbox/").status_code == 302  # customers never
    operator = operator_user("ops@example.com", "an-operator-passphrase")
    client.force_login(operator)
    page = client.get("/ops/outbox/")
    assert page.status_code == 200
    body = page.content.decode()
    assert invitation.token_encrypted in body and RESET_TOKEN in body and "someone@example.com" in body
    assert "/ops/outbox/" in client.get("/ops/").content.decode()


def test_ops_outbox_is_404_without_the_outbox(client, settings):
    settings.EMBEDDED = False
    client.force_login(operator_user("ops@example.com", "an-operator-passphrase"))
    assert client.get("/ops/outbox/").status_code == 404
