"""Invitations with Django's locmem mail; the real SMTP + Celery path is tests/test_invitation_flow.py."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from projects.models import Invitation, Membership
from projects.roles import Role
from projects.tasks import invitation_send_email, invitations_expire
from projects.tests.factories import (
    PASSWORD,
    InvitationFactory,
    MembershipFactory,
    OrganizationFactory,
    ProjectFactory,
    UserFactory,
    make_api_key,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(make_client):
    org = OrganizationFactory()
    MembershipFactory(organization=org, role=Role.OWNER)
    _, secret = make_api_key(org, role=Role.ADMIN)
    return org, make_client(secret)


def invite(client, django_capture_on_commit_callbacks, **body):
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post("/api/v1/invitations", {"email": "New@Example.com", "role": "developer", **body},
                               format="json")
    assert response.status_code == 201, response.content
    assert len(callbacks) == 1  # the mail is enqueued only once the invitation is committed
    return response.json()


def token_from_mail() -> str:
    match = re.search(r"/console/invitations/([A-Za-z0-9_-]+)", mail.outbox[-1].body)
    assert match, mail.outbox[-1].body
    return match.group(1)


def test_invite_sends_a_mail_with_a_working_link(admin, anon, django_capture_on_commit_callbacks):
    org, client = admin
    project = ProjectFactory(organization=org)
    created = invite(client, django_capture_on_commit_callbacks, projects=[project.id])
    assert created["id"].startswith("inv_")
    assert created["email"] == "new@example.com"
    assert created["status"] == "pending"
    assert "token" not in created
    assert invitation_send_email(created["id"]) == "sent"
    assert mail.outbox[-1].to == ["new@example.com"]
    assert org.name in mail.outbox[-1].subject
    assert mail.outbox[-1].alternatives  # an HTML part too
    # A redelivered task does not mail twice.
    assert invitation_send_email(created["id"]) == "already sent"
    assert len(mail.outbox) == 1
    accepted = anon.post("/api/v1/invitations/accept", {"token": token_from_mail(), "password": "a-new-passphrase-1"},
                         format="json")
    assert accepted.status_code == 200, accepted.content
    assert accepted.json()["member"]["role"] == "developer"
    assert accepted.json()["member"]["projects"] == [project.id]
    assert Membership.objects.get(organization=org, user__email="new@example.com").role == Role.DEVELOPER


def test_invitation_token_is_not_stored_in_clear(admin, django_capture_on_commit_callbacks):
    from django.db import connection

    _, client = admin
    created = invite(client, django_capture_on_commit_callbacks)
    invitation_send_email(created["id"])
    token = token_from_mail()
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM projects_invitation WHERE id = %s", [created["id"]])
        row = cursor.fetchone()
    assert token not in " ".join(str(v) for v in row)


def test_revoked_invitation_is_not_mailed_nor_accepted(admin, anon):
    org, client = admin
    invitation = InvitationFactory(organization=org, token="tok-revoked")
    assert client.delete(f"/api/v1/invitations/{invitation.id}").status_code == 204
    assert client.delete(f"/api/v1/invitations/{invitation.id}").status_code == 409
    assert invitation_send_email(invitation.id) == "skipped: revoked"
    assert not mail.outbox
    response = anon.post("/api/v1/invitations/accept", {"token": "tok-revoked", "password": "a-new-passphrase-1"},
                         format="json")
    assert response.status_code == 409


def test_accept_twice_and_expired_are_409(anon):
    invitation = InvitationFactory(token="tok-once")
    body = {"token": "tok-once", "password": "a-new-passphrase-1"}
    assert anon.post("/api/v1/invitations/accept", body, format="json").status_code == 200
    assert anon.post("/api/v1/invitations/accept", body, format="json").status_code == 409
    expiring = InvitationFactory(token="tok-late")
    with time_machine.travel(expiring.expires_at + timedelta(seconds=1)):
        response = anon.post("/api/v1/invitations/accept", {"token": "tok-late", "password": "a-new-passphrase-1"},
                             format="json")
    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    assert not Membership.objects.filter(organization=expiring.organization).exists()
    assert Invitation.objects.get(pk=invitation.pk).status == Invitation.Status.ACCEPTED


def test_unknown_token_is_404_and_weak_password_400(anon):
    assert anon.post("/api/v1/invitations/accept", {"token": "nope"}, format="json").status_code == 404
    InvitationFactory(token="tok-weak")
    weak = anon.post("/api/v1/invitations/accept", {"token": "tok-weak", "password": "123"}, format="json")
    assert weak.status_code == 400
    assert "password" in weak.json()["errors"]
    missing = anon.post("/api/v1/invitations/accept", {"token": "tok-weak"}, format="json")
    assert missing.status_code == 400


def test_existing_user_proves_identity_with_password_or_session(anon, session_client):
    user = UserFactory(email="known@example.com")
    InvitationFactory(email=user.email, token="tok-pw", role=Role.VIEWER)
    wrong = anon.post("/api/v1/invitations/accept", {"token": "tok-pw", "password": "wrong-password"}, format="json")
    assert wrong.status_code == 401
    right = anon.post("/api/v1/invitations/accept", {"token": "tok-pw", "password": PASSWORD}, format="json")
    assert right.status_code == 200
    other = InvitationFactory(email=user.email, token="tok-session")
    by_session = session_client(user).post("/api/v1/invitations/accept", {"token": "tok-session"}, format="json")
    assert by_session.status_code == 200
    assert Membership.objects.filter(user=user).count() == 2
    assert Invitation.objects.get(pk=other.pk).accepted_by == user


def test_inviting_a_member_or_a_pending_address_is_409(admin, django_capture_on_commit_callbacks):
    org, client = admin
    member = MembershipFactory(organization=org, role=Role.VIEWER)
    response = client.post("/api/v1/invitations", {"email": member.user.email.upper(), "role": "viewer"},
                           format="json")
    assert response.status_code == 409
    invite(client, django_capture_on_commit_callbacks)
    again = client.post("/api/v1/invitations", {"email": "new@example.com", "role": "viewer"}, format="json")
    assert again.status_code == 409


def test_periodic_expiry_marks_old_invitations():
    old = InvitationFactory(expires_at=timezone.now() - timedelta(minutes=1))
    fresh = InvitationFactory()
    assert invitations_expire() == 1
    old.refresh_from_db()
    fresh.refresh_from_db()
    assert old.status == Invitation.Status.EXPIRED
    assert fresh.status == Invitation.Status.PENDING
