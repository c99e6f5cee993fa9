"""Password change and reset (API.md: /auth/password/...), in the API and the console: a mailed one-time
link with expiry, the same 202 for known and unknown addresses, other sessions and the lockout cleared,
audited in every organization of the person."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.test import Client, override_settings
from django.utils import timezone

from projects.models import AuditEvent, User
from projects.tests.factories import PASSWORD, MembershipFactory, make_api_key, operator_user
from tests.support import eager_tasks

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-brand-new-passphrase-42"
RESET = "/api/v1/auth/password/reset"
CONFIRM = "/api/v1/auth/password/reset/confirm"
CHANGE = "/api/v1/auth/password/change"
TOKEN_RE = re.compile(r"/console/password/reset/([A-Za-z0-9_-]+\.[A-Za-z0-9-]+)")


@pytest.fixture
def person():
    """A user who belongs to two organizations."""
    first = MembershipFactory()
    MembershipFactory(user=first.user)
    return first.user


@pytest.fixture
def mailed(django_capture_on_commit_callbacks):
    """Requests a reset and returns the token from the mail (the task runs in-process)."""

    def _request(client, email: str) -> str | None:
        before = len(mail.outbox)
        with eager_tasks(), django_capture_on_commit_callbacks(execute=True):
            response = client.post(RESET, {"email": email}, format="json")
        assert response.status_code == 202, response.content
        if len(mail.outbox) == before:
            return None
        match = TOKEN_RE.search(mail.outbox[-1].body)
        assert match, mail.outbox[-1].body
        return match.group(1)

    return _request


def _lock_out(email: str) -> None:
    for _ in range(5):
        Client().post("/console/login", {"email": email, "password": "wrong"})
    response = Client().post("/console/login", {"email": email, "password": PASSWORD})
    assert "Too many failed logins" in response.content.decode()


def test_reset_answers_the_same_for_known_and_unknown_addresses(anon, person, mailed):
    known = anon.post(RESET, {"email": person.email}, format="json")
    unknown = anon.post(RESET, {"email": "nobody@example.com"}, format="json")
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert mailed(anon, "nobody@example.com") is None
    assert mailed(anon, person.email.upper()) is not None
    assert mail.outbox[-1].to == [person.email]


def test_reset_link_sets_a_new_password_once_logs_out_everywhere_and_clears_the_lockout(anon, person, mailed,
                                                                                       session_client):
    other_session = session_client(person)
    assert other_session.get("/api/v1/organization").status_code == 200
    _lock_out(person.email)
    token = mailed(anon, person.email)
    response = anon.post(CONFIRM, {"token": token, "new_password": NEW_PASSWORD}, format="json")
    assert response.status_code == 200, response.content
    person.refresh_from_db()
    assert person.check_password(NEW_PASSWORD)
    assert other_session.get("/api/v1/organization").status_code in (401, 403)
    assert Client().post("/console/login", {"email": person.email, "password": NEW_PASSWORD}).status_code == 302
    # One time only.
    again = anon.post(CONFIRM, {"token": token, "new_password": "yet-another-passphrase-7"}, format="json")
    assert again.status_code == 400 and "token" in again.json()["errors"]
    events = AuditEvent.objects.filter(action="user.password_reset", target_id=person.id)
    assert sorted(e.organization_id for e in events) == sorted(m.organization_id for m in person.memberships.all())


def test_reset_link_expires(anon, person, mailed, settings):
    token = mailed(anon, person.email)
    with time_machine.travel(timezone.now() + timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT + 5)):
        response = anon.post(CONFIRM, {"token": token, "new_password": NEW_PASSWORD}, format="json")
    assert response.status_code == 400 and "token" in response.json()["errors"]


@pytest.mark.parametrize("token", ["", "garbage", "bm9ib2R5.abc-def", "....", "a" * 300])
def test_reset_confirm_refuses_bad_tokens(anon, token):
    response = anon.post(CONFIRM, {"token": token, "new_password": NEW_PASSWORD}, format="json")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/problem+json")


def test_reset_confirm_validates_the_new_password(anon, person, mailed):
    token = mailed(anon, person.email)
    response = anon.post(CONFIRM, {"token": token, "new_password": "12345"}, format="json")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["errors"]["new_password"]
    person.refresh_from_db()
    assert person.check_password(PASSWORD)


def test_reset_is_limited_per_address_and_per_ip(anon, person):
    limits = {"credential": "1000/min", "ip": "1000/min", "password_reset": "4/hour", "password_reset_email": "2/hour"}
    with override_settings(API_RATE_LIMITS=limits):
        statuses = [anon.post(RESET, {"email": person.email}, format="json").status_code for _ in range(3)]
        assert statuses == [202, 202, 429]
        # Another address from another IP is counted apart; the same IP runs out of its own budget.
        other = {"email": "someone@example.com"}
        assert anon.post(RESET, other, format="json", REMOTE_ADDR="192.0.2.7").status_code == 202
        assert anon.post(RESET, {"email": "x@example.com"}, format="json").status_code == 202
        response = anon.post(RESET, {"email": "y@example.com"}, format="json")
        assert response.status_code == 429 and int(response["Retry-After"]) > 60


def test_change_needs_the_current_password_and_keeps_only_this_session(person, session_client):
    this, other = session_client(person), session_client(person)
    wrong = this.post(CHANGE, {"current_password": "not-it", "new_password": NEW_PASSWORD}, format="json")
    assert wrong.status_code == 400 and "current_password" in wrong.json()["errors"]
    weak = this.post(CHANGE, {"current_password": PASSWORD, "new_password": "password"}, format="json")
    assert weak.status_code == 400 and "new_password" in weak.json()["errors"]
    response = this.post(CHANGE, {"current_password": PASSWORD, "new_password": NEW_PASSWORD}, format="json")
    assert response.status_code == 200, response.content
    assert this.get("/api/v1/organization").status_code == 200
    assert other.get("/api/v1/organization").status_code in (401, 403)
    person.refresh_from_db()
    assert person.check_password(NEW_PASSWORD)
    assert AuditEvent.objects.filter(action="user.password_change", target_id=person.id).count() == 2


def test_change_guesses_count_toward_the_lockout(person, session_client, settings):
    client = session_client(person)
    for _ in range(settings.LOGIN_MAX_FAILURES):
        client.post(CHANGE, {"current_password": "not-it", "new_password": NEW_PASSWORD}, format="json")
    response = client.post(CHANGE, {"current_password": PASSWORD, "new_password": NEW_PASSWORD}, format="json")
    assert response.status_code == 429


def test_change_clears_the_lockout(person, session_client, settings):
    almost = settings.LOGIN_MAX_FAILURES - 1
    for _ in range(almost):
        Client().post("/console/login", {"email": person.email, "password": "wrong"})
    client = session_client(person)
    assert client.post(CHANGE, {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
                       format="json").status_code == 200
    for _ in range(almost):
        Client().post("/console/login", {"email": person.email, "password": "wrong"})
    assert Client().post("/console/login", {"email": person.email, "password": NEW_PASSWORD}).status_code == 302


def test_change_is_for_people_not_api_keys(make_client, person):
    _, secret = make_api_key(person.memberships.first().organization)
    response = make_client(secret).post(CHANGE, {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
                                        format="json")
    assert response.status_code in (401, 403)
    assert response["Content-Type"].startswith("application/problem+json")


def test_endpoints_are_in_the_openapi_schema(anon):
    paths = anon.get("/api/v1/schema?format=json").json()["paths"]
    for path in (RESET, CONFIRM, CHANGE):
        assert "post" in paths[path], path


# --- console ----------------------------------------------------------------------------------------
def test_console_forgot_password_link_mail_and_confirm_page(person, django_capture_on_commit_callbacks):
    client = Client()
    login_page = client.get("/console/login").content.decode()
    assert 'href="/console/password/reset"' in login_page
    with eager_tasks(), django_capture_on_commit_callbacks(execute=True):
        response = client.post("/console/password/reset", {"email": person.email})
    assert response.status_code == 200 and "If an account" in response.content.decode()
    link = TOKEN_RE.search(mail.outbox[-1].body)
    assert mail.outbox[-1].body.count("http://") >= 1 and link
    page = client.get(f"/console/password/reset/{link.group(1)}")
    assert page.status_code == 200 and "new_password" in page.content.decode()
    weak = client.post(f"/console/password/reset/{link.group(1)}", {"new_password": "123"})
    assert weak.status_code == 400
    done = client.post(f"/console/password/reset/{link.group(1)}", {"new_password": NEW_PASSWORD})
    assert done.status_code == 302 and done["Location"] == "/console/login"
    used = client.get(f"/console/password/reset/{link.group(1)}")
    assert "no longer valid" in used.content.decode()
    assert Client().post("/console/login", {"email": person.email, "password": NEW_PASSWORD}).status_code == 302


def test_console_change_password_page(person):
    client, other = Client(), Client()
    client.force_login(person)
    other.force_login(person)
    home = client.get("/console/").content.decode()
    assert 'href="/console/account/password"' in home
    assert client.get("/console/account/password").status_code == 200
    wrong = client.post("/console/account/password", {"current_password": "nope", "new_password": NEW_PASSWORD})
    assert wrong.status_code == 400 and "not correct" in wrong.content.decode()
    done = client.post("/console/account/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert done.status_code == 302
    assert client.get("/console/").status_code == 200
    assert other.get("/console/").status_code == 302  # logged out
    assert User.objects.get(pk=person.pk).check_password(NEW_PASSWORD)


# --- real SMTP --------------------------------------------------------------------------------------
@pytest.mark.integration
def test_reset_mail_over_real_smtp_carries_a_working_link(anon, person, smtp, django_capture_on_commit_callbacks):
    with eager_tasks(), django_capture_on_commit_callbacks(execute=True):
        assert anon.post(RESET, {"email": person.email}, format="json").status_code == 202
    [(recipients, message)] = smtp.messages
    assert recipients == [person.email]
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert body.count("http://127.0.0.1:8000/console/password/reset/") == 1
    token = TOKEN_RE.search(body).group(1)
    assert anon.post(CONFIRM, {"token": token, "new_password": NEW_PASSWORD}, format="json").status_code == 200


# --- ops site ---------------------------------------------------------------------------------------
def test_ops_password_change_is_counted_and_audited(client, settings):
    staff = operator_user("operator@example.com", PASSWORD)
    client.force_login(staff)
    assert client.get("/ops/password_change/").status_code == 200
    body = {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    response = client.post("/ops/password_change/", body)
    assert response.status_code == 302 and response["Location"] == "/ops/password_change/done/"
    staff.refresh_from_db()
    assert staff.check_password(NEW_PASSWORD)
    assert AuditEvent.objects.filter(action="user.password_change", target_id=staff.id, organization=None).exists()
    assert client.get("/ops/").status_code == 200  # this session stays
    for _ in range(settings.LOGIN_MAX_FAILURES):
        response = client.post("/ops/password_change/", body | {"old_password": "not-it"})
        assert response.status_code == 200 and "not correct" in response.content.decode()
    response = client.post("/ops/password_change/", body | {"old_password": NEW_PASSWORD})
    assert "Too many failed logins" in response.content.decode()


def test_other_peoples_failures_from_the_same_address_do_not_stop_a_signed_in_change(person, session_client, settings):
    # A signed-in person already proved a session; only their own account's failures count against the change,
    # not a neighbour's on the same office NAT (the per-address allowance is for logins).
    for index in range(settings.LOGIN_MAX_FAILURES * 4):
        Client().post("/console/login", {"email": f"someone-{index}@example.com", "password": "wrong"})
    client = session_client(person)
    response = client.post(CHANGE, {"current_password": PASSWORD, "new_password": NEW_PASSWORD}, format="json")
    assert response.status_code == 200, response.content
