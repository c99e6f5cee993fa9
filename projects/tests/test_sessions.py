"""Issue 17, item 3: console sessions. Each login gets a record (device, IP, created, last seen) that follows its
key; a person lists and ends theirs; a password change ends the others; removal ends them where the
organization's policy says so; idle and absolute timeouts (the strictest organization wins); logins audited."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from projects.accounts import password_reset_token
from projects.models import AuditEvent, ConsoleSession, Organization, TwoFactorDevice
from projects.roles import Role
from projects.services.sessions import device_from_user_agent
from projects.tests.factories import PASSWORD, MembershipFactory, make_api_key

pytestmark = pytest.mark.django_db

FIREFOX = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.1 Mobile/15E148 Safari/604.1")


def _log_in(email: str, *, user_agent: str = FIREFOX, ip: str = "127.0.0.1") -> APIClient:
    """A browser logged in through the console's login page (APIClient: JSON calls to the API with the cookie)."""
    client = APIClient(HTTP_USER_AGENT=user_agent, REMOTE_ADDR=ip)
    response = client.post("/console/login", {"email": email, "password": PASSWORD}, format="multipart")
    assert response.status_code == 302, response.content
    return client


def _logged_in(client) -> bool:
    return client.get("/console/members").status_code == 200


@pytest.fixture
def member():
    return MembershipFactory(role=Role.DEVELOPER)


def test_a_login_gets_a_record_that_lists_device_ip_and_times_and_marks_this_one(member):
    with time_machine.travel("2026-12-05 09:00:00Z", tick=False):
        laptop = _log_in(member.user.email)
    with time_machine.travel("2026-12-05 10:00:00Z", tick=False):
        phone = _log_in(member.user.email, user_agent=IPHONE, ip="2001:db8::9")
        listed = phone.get("/api/v1/sessions").json()["results"]
    nine, ten = "2026-12-05T09:00:00.000000Z", "2026-12-05T10:00:00.000000Z"
    assert [(s["device"], s["ip"], s["created_at"], s["last_seen_at"], s["current"]) for s in listed] == [
        ("Mobile Safari 17 on iOS (iPhone)", "2001:db8::9", ten, ten, True),
        ("Firefox 133 on Ubuntu", "127.0.0.1", nine, nine, False),
    ]
    assert laptop.get("/api/v1/sessions").json()["results"][1]["current"] is True
    # The login rotated the session's key: the record holds the key the browser has now.
    assert ConsoleSession.objects.filter(session_key=laptop.cookies["sessionid"].value).exists()


def test_devices_read_from_user_agents():
    assert device_from_user_agent(FIREFOX) == "Firefox 133 on Ubuntu"
    assert device_from_user_agent("curl/8.5.0") == "curl 8"
    assert device_from_user_agent("") == "Unknown device"


def test_last_seen_is_written_at_most_once_a_minute(member):
    with time_machine.travel("2026-12-05 09:00:00Z", tick=False) as clock:
        client = _log_in(member.user.email)
        record = ConsoleSession.objects.get(user=member.user)
        clock.move_to("2026-12-05 09:00:59Z")
        with CaptureQueriesContext(connection) as queries:
            assert _logged_in(client)
        assert not [q for q in queries.captured_queries if "projects_consolesession" in q["sql"]]
        clock.move_to("2026-12-05 09:01:01Z")
        assert client.get("/console/members", REMOTE_ADDR="127.0.0.2").status_code == 200
    record.refresh_from_db()
    assert record.last_seen_at.isoformat() == "2026-12-05T09:01:01+00:00" and record.ip == "127.0.0.2"


def test_ending_another_session_logs_that_browser_out_at_once(member):
    laptop, phone = _log_in(member.user.email), _log_in(member.user.email, user_agent=IPHONE)
    phone_id = phone.get("/api/v1/sessions").json()["results"][0]["id"]
    assert laptop.delete(f"/api/v1/sessions/{phone_id}").status_code == 204
    assert not _logged_in(phone)
    assert phone.get("/api/v1/sessions").status_code == 401
    assert _logged_in(laptop)
    assert [s["id"] for s in laptop.get("/api/v1/sessions").json()["results"]] != [phone_id]
    event = AuditEvent.objects.get(action="session.end", organization=member.organization)
    assert event.changes["session"] == phone_id and event.changes["device"].startswith("Mobile Safari")


def test_end_all_others_keeps_only_this_one(member):
    first, second, third = (_log_in(member.user.email) for _ in range(3))
    response = second.post("/api/v1/sessions/end-others")
    assert response.json() == {"ended": 2}
    assert [_logged_in(c) for c in (first, second, third)] == [False, True, False]
    assert second.post("/api/v1/sessions/end-others").json() == {"ended": 0}
    assert ConsoleSession.objects.filter(user=member.user).count() == 1


def test_a_person_sees_and_ends_only_their_own_sessions(member):
    colleague = MembershipFactory(organization=member.organization, role=Role.OWNER)
    theirs = _log_in(colleague.user.email)
    mine = _log_in(member.user.email)
    their_id = theirs.get("/api/v1/sessions").json()["results"][0]["id"]
    assert [s["id"] for s in mine.get("/api/v1/sessions").json()["results"]] != [their_id]
    assert mine.get(f"/api/v1/sessions/{their_id}").status_code == 404
    assert mine.delete(f"/api/v1/sessions/{their_id}").status_code == 404
    assert _logged_in(theirs)


def test_an_api_key_has_no_sessions(member, make_client):
    _log_in(member.user.email)
    api = make_client(make_api_key(member.organization)[1])
    assert api.get("/api/v1/sessions").json()["results"] == []
    response = api.post("/api/v1/sessions/end-others")
    assert response.status_code == 403 and response["Content-Type"] == "application/problem+json"
    assert ConsoleSession.objects.filter(user=member.user).count() == 1


def test_a_password_change_ends_every_other_session_and_keeps_this_one_on_a_new_key(member):
    keep, other = _log_in(member.user.email), _log_in(member.user.email)
    kept = ConsoleSession.objects.get(session_key=keep.cookies["sessionid"].value)
    response = keep.post("/api/v1/auth/password/change",
                         {"current_password": PASSWORD, "new_password": "another-long-passphrase"}, format="json")
    assert response.status_code == 200, response.content
    assert _logged_in(keep) and not _logged_in(other)
    kept_now = ConsoleSession.objects.get(user=member.user)
    assert kept_now.pk == kept.pk and kept_now.session_key != kept.session_key
    assert kept_now.session_key == keep.cookies["sessionid"].value
    event = AuditEvent.objects.get(action="user.password_change", organization=member.organization)
    assert event.changes["sessions_ended"] == 1


def test_removal_ends_the_sessions_only_where_the_organization_requires_it(session_client):
    admin = MembershipFactory(role=Role.ADMIN)
    kept, ended = (MembershipFactory(organization=admin.organization, role=Role.VIEWER) for _ in range(2))
    kept_browser, ended_browser = _log_in(kept.user.email), _log_in(ended.user.email)
    MembershipFactory(user=kept.user)  # still a member elsewhere: the console stays open for that organization
    MembershipFactory(user=ended.user)
    client = session_client(admin.user)
    assert client.delete(f"/api/v1/members/{kept.id}").status_code == 204
    assert _logged_in(kept_browser)
    Organization.objects.filter(pk=admin.organization_id).update(end_sessions_on_removal=True)
    assert client.delete(f"/api/v1/members/{ended.id}").status_code == 204
    assert not _logged_in(ended_browser)
    assert not ConsoleSession.objects.filter(user=ended.user).exists()
    event = AuditEvent.objects.get(action="session.end_all", organization=admin.organization)
    assert event.changes["reason"].startswith(f"removed from {admin.organization.name}")


def test_idle_timeout_the_strictest_organization_wins(member):
    Organization.objects.filter(pk=member.organization_id).update(session_idle_timeout_minutes=120)
    stricter = MembershipFactory(user=member.user, organization__session_idle_timeout_minutes=30)
    with time_machine.travel("2026-12-05 09:00:00Z", tick=False) as clock:
        client = _log_in(member.user.email)
        clock.move_to("2026-12-05 09:29:00Z")
        assert _logged_in(client)  # active again: the idle clock restarts
        clock.move_to("2026-12-05 09:58:00Z")
        assert _logged_in(client)
        clock.move_to("2026-12-05 10:28:30Z")
        response = client.get("/console/members")
    assert response.status_code == 302 and "/console/login" in response["Location"]
    assert not ConsoleSession.objects.filter(user=member.user).exists()
    event = AuditEvent.objects.get(action="session.expire", organization=stricter.organization)
    assert event.changes["reason"] == "idle timeout (30 minutes)"


def test_absolute_timeout_ends_even_a_busy_session_and_the_api_answers_401(member):
    Organization.objects.filter(pk=member.organization_id).update(session_absolute_timeout_minutes=60)
    with time_machine.travel("2026-12-05 09:00:00Z", tick=False) as clock:
        client = _log_in(member.user.email)
        for minute in range(10, 60, 10):
            clock.move_to(f"2026-12-05 09:{minute}:00Z")
            assert client.get("/api/v1/sessions").status_code == 200
        clock.move_to("2026-12-05 10:00:01Z")
        response = client.get("/api/v1/sessions")
    assert response.status_code == 401 and response["Content-Type"] == "application/problem+json"
    assert AuditEvent.objects.get(action="session.expire").changes["reason"] == "absolute timeout (60 minutes)"


def test_a_new_timeout_applies_within_a_minute(member):
    with time_machine.travel("2026-12-05 09:00:00Z", tick=False) as clock:
        client = _log_in(member.user.email)
        Organization.objects.filter(pk=member.organization_id).update(session_absolute_timeout_minutes=5)
        clock.move_to("2026-12-05 09:01:00Z")
        assert _logged_in(client)  # this request reads the new policy
        clock.move_to("2026-12-05 09:05:01Z")
        assert not _logged_in(client)


def test_logging_out_ends_the_record_and_is_audited(member):
    client = _log_in(member.user.email)
    assert client.post("/console/logout").status_code == 302
    assert not ConsoleSession.objects.exists()
    assert AuditEvent.objects.filter(action="user.logout", organization=member.organization).count() == 1


def test_every_login_is_audited_with_method_ip_and_result(member):
    Client(REMOTE_ADDR="198.51.100.4").post("/console/login", {"email": member.user.email, "password": "wrong"})
    _log_in(member.user.email, ip="2001:db8::4")
    Client().post("/console/login", {"email": "nobody@example.com", "password": "whatever"})
    events = AuditEvent.objects.filter(action="user.login").order_by("created_at")
    assert [(e.organization_id, e.actor_label, e.ip, e.changes["method"], e.changes["result"]) for e in events] == [
        (member.organization_id, member.user.email, "198.51.100.4", "password", "failure"),
        (member.organization_id, member.user.email, "2001:db8::4", "password", "success"),
        (None, "nobody@example.com", "127.0.0.1", "password", "failure"),
    ]
    assert events[1].user_agent == FIREFOX


def test_a_locked_out_address_is_audited_once_a_minute_not_per_guess(member):
    for _ in range(8):
        Client().post("/console/login", {"email": member.user.email, "password": "wrong"})
    results = list(AuditEvent.objects.filter(action="user.login").values_list("changes__result", flat=True))
    assert results.count("failure") == 5 and results.count("locked") == 1


def test_records_of_sessions_past_their_lifetime_are_not_listed_and_go_at_the_next_login(member, settings):
    with time_machine.travel(timezone.now() - timedelta(seconds=settings.SESSION_COOKIE_AGE + 60)):
        _log_in(member.user.email)
    assert ConsoleSession.objects.count() == 1  # lapsed, still there until the next login
    current = _log_in(member.user.email)
    assert len(current.get("/api/v1/sessions").json()["results"]) == 1
    assert ConsoleSession.objects.count() == 1  # the lapsed record went with that login


def test_ending_the_current_session_is_logging_out(member):
    browser = _log_in(member.user.email)
    current = browser.get("/api/v1/sessions").json()["results"][0]["id"]
    assert browser.delete(f"/api/v1/sessions/{current}").status_code == 204
    assert not _logged_in(browser)
    console = _log_in(member.user.email)
    current = ConsoleSession.objects.get(user=member.user).pk
    response = console.post(f"/console/account/sessions/{current}/end", format="multipart")
    assert response.status_code == 302 and response["Location"] == "/console/login"
    assert not _logged_in(console) and not ConsoleSession.objects.exists()


def test_a_logout_anywhere_takes_the_record_with_it(member):
    """The ops site's logout is Django's own view: the middleware, not the console's view, ends the record."""
    member.user.is_staff = True
    member.user.save()
    client = _log_in(member.user.email)
    # Every operator has two-factor login (projects/ops_site.py); turned on here after the login, for brevity.
    TwoFactorDevice.objects.create(user=member.user, secret=pyotp.random_base32(), confirmed_at=timezone.now())
    assert ConsoleSession.objects.count() == 1
    assert client.post("/ops/logout/").status_code in (200, 302)
    assert not ConsoleSession.objects.exists()
    assert AuditEvent.objects.get(action="user.logout").changes["reason"] == "logged out"


def test_the_console_lists_and_ends_all_other_sessions(member):
    Organization.objects.filter(pk=member.organization_id).update(session_idle_timeout_minutes=45)
    other = _log_in(member.user.email, user_agent=IPHONE, ip="2001:db8::9")
    console = _log_in(member.user.email)
    page = console.get("/console/account/sessions").content.decode()
    assert "Mobile Safari 17 on iOS (iPhone)" in page and "2001:db8::9" in page and "this session" in page
    assert "after 45 minutes without a request" in page
    response = console.post("/console/account/sessions/end-others", format="multipart", follow=True)
    assert "1 other session ended." in response.content.decode()
    assert not _logged_in(other) and _logged_in(console)


def test_a_password_reset_ends_every_session(member):
    first, second = _log_in(member.user.email), _log_in(member.user.email)
    member.user.refresh_from_db()  # the logins changed last_login, which the token signs
    token = password_reset_token(user=member.user)
    response = APIClient().post("/api/v1/auth/password/reset/confirm",
                                {"token": token, "new_password": "another-long-passphrase"}, format="json")
    assert response.status_code == 200, response.content
    assert not _logged_in(first) and not _logged_in(second)
    assert not ConsoleSession.objects.exists()


def test_a_console_page_view_does_not_save_the_session(member):
    """The organization chosen in the session is written only when it changes: a page view neither updates the
    session row nor sends a new session cookie."""
    client = _log_in(member.user.email)
    assert _logged_in(client)  # the first page view settles the chosen organization
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/console/members")
    assert response.status_code == 200
    assert "sessionid" not in response.cookies
    assert not [q for q in queries.captured_queries
                if q["sql"].startswith("UPDATE") and "django_session" in q["sql"]]


def test_the_hourly_purge_takes_lapsed_records_and_expired_sessions_of_people_who_never_return(member, settings):
    from django.contrib.sessions.models import Session

    from projects.tasks import console_sessions_purge

    with time_machine.travel(timezone.now() - timedelta(seconds=settings.SESSION_COOKIE_AGE + 60)):
        _log_in(member.user.email)
    returning = MembershipFactory().user
    live = _log_in(returning.email)
    assert ConsoleSession.objects.count() == 2 and Session.objects.count() == 2
    assert console_sessions_purge() == 1
    assert ConsoleSession.objects.get().user_id == returning.pk
    assert Session.objects.count() == 1 and _logged_in(live)
