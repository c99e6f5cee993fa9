"""Issue 17, item 2: two-factor login with TOTP and recovery codes. Enrolment, the login's second step (a
half-logged-in state that opens nothing), reused codes refused, recovery codes used once, the lockout shared
with passwords, the organization policy, turning it off, and the audit events of each."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.utils import timezone

from projects.models import AuditEvent, Organization, RecoveryCode, TwoFactorDevice
from projects.roles import Role
from projects.services.two_factor import two_factor_enrol_begin, two_factor_enrol_confirm
from projects.tests.factories import PASSWORD, MembershipFactory, make_api_key, operator_user

pytestmark = pytest.mark.django_db

LOGIN = "/console/login"
CODE_PAGE = "/console/login/two-factor"
SETUP_PAGE = "/console/account/two-factor"


def _enrol(user) -> tuple[pyotp.TOTP, list[str]]:
    """Two-factor turned on a minute ago, so the current code has not been used yet."""
    with time_machine.travel(timezone.now() - timedelta(seconds=60)):
        device = two_factor_enrol_begin(user=user)
        totp = pyotp.TOTP(device.secret)
        codes = two_factor_enrol_confirm(user=user, code=totp.now(), ip="127.0.0.1")
    return totp, codes


def _password_step(user) -> Client:
    client = Client()
    response = client.post(LOGIN, {"email": user.email, "password": PASSWORD, "next": "/console/members"})
    assert response.status_code == 302 and response["Location"] == CODE_PAGE, response.content[:300]
    return client


def _actions(user) -> list[tuple[str, dict]]:
    events = AuditEvent.objects.filter(actor_id=user.pk).order_by("created_at", "id")
    return [(event.action, event.changes) for event in events]


@pytest.fixture
def member():
    return MembershipFactory(role=Role.OWNER)


def test_enrolment_shows_a_qr_code_and_the_secret_then_turns_on_with_a_first_code(member, session_client):
    client = session_client(member.user)
    assert "Set up two-factor login" in client.get(SETUP_PAGE).content.decode()
    assert client.post(f"{SETUP_PAGE}/setup", {"password": PASSWORD}).status_code == 302
    page = client.get(SETUP_PAGE)
    assert page["Cache-Control"] == "no-store"
    body = page.content.decode()
    device = TwoFactorDevice.objects.get(user=member.user)
    assert '<svg role="img" aria-label="QR code for mqcloud' in body
    assert " ".join(device.secret[i:i + 4] for i in range(0, 32, 4)) in body
    assert device.confirmed_at is None

    wrong = client.post(SETUP_PAGE, {"code": "000000" if pyotp.TOTP(device.secret).now() != "000000" else "111111"})
    assert wrong.status_code == 400 and "not correct" in wrong.content.decode()
    done = client.post(SETUP_PAGE, {"code": pyotp.TOTP(device.secret).now()})
    assert done.status_code == 200 and done["Cache-Control"] == "no-store"
    body = done.content.decode()
    assert body.count("<li><code>") == 10
    device.refresh_from_db()
    assert device.confirmed_at is not None

    # Stored: the secret encrypted, the recovery codes hashed.
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM projects_twofactordevice WHERE id = %s", [device.pk])
        (stored,) = cursor.fetchone()
    assert device.secret not in stored
    hashes = set(RecoveryCode.objects.filter(user=member.user).values_list("code_hash", flat=True))
    assert len(hashes) == 10 and not any(code in body for code in hashes)
    assert [action for action, _ in _actions(member.user)] == ["two_factor.code_failed", "two_factor.enrol"]


def test_login_asks_for_the_code_and_the_half_way_session_opens_nothing(member):
    totp, _ = _enrol(member.user)
    client = _password_step(member.user)
    # Between the password and the code the browser is not logged in: the console and the API refuse it.
    assert client.get("/console/members")["Location"].startswith("/console/login")
    assert client.get("/api/v1/organization").status_code == 401
    assert "Enter your code" in client.get(CODE_PAGE).content.decode()

    response = client.post(CODE_PAGE, {"code": totp.now()})
    assert response.status_code == 302 and response["Location"] == "/console/members"
    assert client.get("/console/members").status_code == 200
    logins = [changes for action, changes in _actions(member.user) if action == "user.login"]
    assert [(entry["method"], entry["result"]) for entry in logins] == [
        ("password", "second_factor_required"), ("password+totp", "success")]


def test_a_code_is_refused_when_used_again_within_its_window(member):
    totp, _ = _enrol(member.user)
    with time_machine.travel(timezone.now(), tick=False):  # both tries within one 30-second step
        code = totp.now()
        first = _password_step(member.user)
        assert first.post(CODE_PAGE, {"code": code}).status_code == 302
        again = _password_step(member.user).post(CODE_PAGE, {"code": code})
    assert again.status_code == 400 and "already used" in again.content.decode()
    logins = [(changes["method"], changes["result"]) for action, changes in _actions(member.user)
              if action == "user.login"]
    assert sorted(logins) == sorted([("password", "second_factor_required")] * 2
                                    + [("password+totp", "success"), ("password+code", "failure")])


def test_a_recovery_code_logs_in_once(member):
    _, codes = _enrol(member.user)
    client = _password_step(member.user)
    assert client.post(CODE_PAGE, {"code": codes[3].upper()}).status_code == 302
    assert "9 left" in client.get("/console/members").content.decode()
    refused = _password_step(member.user).post(CODE_PAGE, {"code": codes[3]})
    assert refused.status_code == 400
    used = [changes for action, changes in _actions(member.user) if action == "two_factor.recovery_code_used"]
    assert used == [{"recovery_codes_left": 9}]


def test_guessing_codes_locks_the_account_like_passwords(member, settings):
    totp, _ = _enrol(member.user)
    client = _password_step(member.user)
    right = totp.at(timezone.now() + timedelta(seconds=30))
    for guess in range(settings.LOGIN_MAX_FAILURES):
        wrong = f"{guess:06d}" if f"{guess:06d}" != right else "999999"
        assert client.post(CODE_PAGE, {"code": wrong}).status_code == 400
    # Locked: even the right code is not looked at, and neither is the right password.
    locked = client.post(CODE_PAGE, {"code": right})
    assert locked.status_code == 400 and "Too many failed logins" in locked.content.decode()
    assert "Too many failed logins" in Client().post(LOGIN, {"email": member.user.email,
                                                             "password": PASSWORD}).content.decode()
    results = [changes["result"] for action, changes in _actions(member.user) if action == "user.login"]
    assert results.count("failure") == settings.LOGIN_MAX_FAILURES and "locked" in results


def test_organization_policy_sends_members_without_two_factor_to_enrol(member, session_client, make_client):
    colleague = MembershipFactory(organization=member.organization, role=Role.DEVELOPER)
    owner_api = session_client(member.user)
    # Turning it on needs it on one's own account first (the lock-out guard).
    refused = owner_api.patch("/api/v1/organization/security", {"require_two_factor": True}, format="json")
    assert refused.status_code == 400 and "require_two_factor" in refused.json()["errors"]
    _enrol(member.user)
    owner_api = session_client(member.user)  # enrolling elsewhere ended the sessions opened without it
    response = owner_api.patch("/api/v1/organization/security", {"require_two_factor": True}, format="json")
    assert response.status_code == 200 and response.json()["require_two_factor"] is True
    assert Organization.objects.get(pk=member.organization_id).require_two_factor

    console = session_client(colleague.user)
    assert console.get("/console/members")["Location"] == SETUP_PAGE
    assert console.get(SETUP_PAGE).status_code == 200
    api = console.get("/api/v1/projects")
    assert api.status_code == 403 and api.json()["type"].endswith("two-factor-required")
    # An API key is not a person logging in: the policy does not apply to it.
    assert make_client(make_api_key(member.organization)[1]).get("/api/v1/projects").status_code == 200
    _enrol(colleague.user)
    assert console.get("/console/members").status_code == 302  # ended with the enrolment made elsewhere
    assert session_client(colleague.user).get("/console/members").status_code == 200


def test_turning_it_off_needs_a_current_code(member, session_client):
    totp, codes = _enrol(member.user)
    client = session_client(member.user)
    assert "Recovery codes left: <strong>10</strong>" in client.get(SETUP_PAGE).content.decode()
    assert client.post(SETUP_PAGE, {"code": "12345x"}).status_code == 400
    assert TwoFactorDevice.objects.filter(user=member.user).exists()
    assert client.post(SETUP_PAGE, {"code": totp.now()}).status_code == 302
    assert not TwoFactorDevice.objects.filter(user=member.user).exists()
    assert not RecoveryCode.objects.filter(user=member.user).exists()
    actions = [action for action, _ in _actions(member.user)]
    assert actions[-2:] == ["two_factor.code_failed", "two_factor.disable"]
    # Off: the password alone logs in again.
    assert Client().post(LOGIN, {"email": member.user.email, "password": PASSWORD})["Location"] == "/console/"


def test_the_ops_login_asks_an_operator_with_two_factor_for_the_code():
    """A session of the ops site is a console session too: its password-only login must not skip the code."""
    from projects.models import User

    operator = User.objects.create_user("ops@example.com", PASSWORD, is_staff=True)
    totp, _ = _enrol(operator)
    form = {"username": operator.email, "password": PASSWORD, "next": "/ops/"}
    without = Client().post("/ops/login/", form)
    assert without.status_code == 200 and "enter the code from your app" in without.content.decode()
    wrong = Client().post("/ops/login/", form | {"code": "12345x"})
    assert wrong.status_code == 200 and "not correct" in wrong.content.decode()
    right = Client().post("/ops/login/", form | {"code": totp.now()})
    assert right.status_code == 302 and right["Location"] == "/ops/"
    methods = [changes["method"] for action, changes in _actions(operator) if action == "user.login"]
    assert "password (ops site)+totp" in methods


def test_an_invitation_is_not_accepted_with_the_password_alone_of_an_account_with_two_factor(member, anon):
    from projects.tests.factories import InvitationFactory

    _enrol(member.user)
    invitation = InvitationFactory(email=member.user.email)
    response = anon.post("/api/v1/invitations/accept", {"token": invitation.token_encrypted, "password": PASSWORD},
                         format="json")
    assert response.status_code == 401 and "two-factor" in response.json()["detail"]


def test_an_operator_turns_off_two_factor_for_a_person_who_lost_phone_and_codes(member):

    _enrol(member.user)
    ops = Client()
    ops.force_login(operator_user("ops@example.com", "an-operator-passphrase"))
    response = ops.post("/ops/projects/user/", {"action": "reset_two_factor", "_selected_action": [member.user.pk]})
    assert response.status_code == 302
    assert not TwoFactorDevice.objects.filter(user=member.user).exists()
    assert not RecoveryCode.objects.filter(user=member.user).exists()
    reset = [changes for action, changes in _actions(member.user) if action == "two_factor.reset"]
    assert reset == [{"operator": "ops@example.com"}]


def test_turning_two_factor_on_ends_the_sessions_opened_with_the_password_alone(member):
    """A session opened with the password alone (a phished one, say) must not outlive the switch to two-factor:
    the enrolling session stays, every other one ends, as on a password change."""
    def logged_in_browser() -> Client:
        client = Client()
        assert client.post(LOGIN, {"email": member.user.email, "password": PASSWORD}).status_code == 302
        assert client.get("/console/members").status_code == 200
        return client

    other, enrolling = logged_in_browser(), logged_in_browser()
    assert enrolling.post(f"{SETUP_PAGE}/setup", {"password": PASSWORD}).status_code == 302
    device = TwoFactorDevice.objects.get(user=member.user)
    assert enrolling.post(SETUP_PAGE, {"code": pyotp.TOTP(device.secret).now()}).status_code == 200
    assert enrolling.get("/console/members").status_code == 200
    assert other.get("/console/members").status_code == 302


def test_starting_a_setup_asks_for_the_password_again(member, session_client):
    """A session left open elsewhere must not tie the account to someone else's app."""
    client = session_client(member.user)
    assert client.post(f"{SETUP_PAGE}/setup", {"password": "not-the-password"})["Location"] == SETUP_PAGE
    assert not TwoFactorDevice.objects.filter(user=member.user).exists()
    page = client.get(SETUP_PAGE).content.decode()
    assert 'id="setup-password-error">The password is not correct.' in page and 'aria-invalid="true"' in page
    assert 'aria-invalid="true"' not in client.get(SETUP_PAGE).content.decode()  # said once


def test_new_recovery_codes_replace_the_old_ones_with_a_current_code_from_the_app(member, session_client):
    """Codes used up or seen by someone else: ten new ones, the old ones void. A recovery code cannot mint them
    (whoever holds one of the old codes must not get ten fresh ones)."""
    totp, old_codes = _enrol(member.user)
    client = session_client(member.user)
    renew = f"{SETUP_PAGE}/recovery-codes"
    refused = client.post(renew, {"code": old_codes[0]})
    assert refused.status_code == 302 and refused["Location"] == SETUP_PAGE
    assert "not correct" in client.get(SETUP_PAGE).content.decode()
    assert RecoveryCode.objects.filter(user=member.user, used_at__isnull=True).count() == 10

    page = client.post(renew, {"code": totp.now()})
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    body = page.content.decode()
    new_codes = [code for code in body.split("<code>")[1:]]
    assert len(new_codes) == 10 and "Your new recovery codes" in body
    assert not any(old in body for old in old_codes)
    assert RecoveryCode.objects.filter(user=member.user).count() == 10
    assert ("two_factor.recovery_codes_renew", {"recovery_codes": 10}) in _actions(member.user)
    # An old code no longer logs in.
    step = _password_step(member.user)
    assert "not correct" in step.post(CODE_PAGE, {"code": old_codes[1]}).content.decode()
