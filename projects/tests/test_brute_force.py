"""Brute force against the logins and signup: every attempt is counted before it is judged, so parallel
guesses cannot all slip under the limit. Both counter stores (Redis and the database) are exercised."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from projects.models import User
from projects.tests.factories import PASSWORD, MembershipFactory
from tests.support import run_in_parallel

STORES = ["redis", "database"]
GUESSES = 30


@pytest.fixture(params=STORES)
def store(request):
    with override_settings(RATE_LIMIT_STORE=request.param):
        yield request.param


def _guesses(right_at: int) -> list[str]:
    return [PASSWORD if index == right_at else f"wrong-guess-{index}" for index in range(GUESSES)]


@pytest.mark.django_db(transaction=True)
def test_parallel_console_guesses_only_the_allowed_number_are_evaluated(store, settings):
    member = MembershipFactory()
    passwords = _guesses(right_at=GUESSES - 1)

    def guess(index: int) -> str:
        response = Client().post("/console/login", {"email": member.user.email, "password": passwords[index]})
        body = response.content.decode()
        if response.status_code == 302:
            return "in"
        if "Too many failed logins" in body:
            return "locked"
        assert "not correct" in body, body[:500]
        return "wrong"

    outcomes = run_in_parallel(GUESSES, guess)
    assert outcomes.count("wrong") <= settings.LOGIN_MAX_FAILURES, outcomes
    # A right password is not a failure: it may be judged besides the allowed failures, never more.
    assert outcomes.count("wrong") + outcomes.count("in") <= settings.LOGIN_MAX_FAILURES + 1, outcomes
    assert outcomes.count("locked") >= GUESSES - settings.LOGIN_MAX_FAILURES - 1
    # Once locked, even the right password waits for the window to pass.
    response = Client().post("/console/login", {"email": member.user.email, "password": PASSWORD})
    assert "Too many failed logins" in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_parallel_ops_guesses_only_the_allowed_number_are_evaluated(store, settings):
    staff = User.objects.create_superuser("operator@example.com", PASSWORD)
    passwords = _guesses(right_at=GUESSES - 1)

    def guess(index: int) -> str:
        response = Client().post("/ops/login/", {"username": staff.email, "password": passwords[index],
                                                 "next": "/ops/"})
        body = response.content.decode()
        if response.status_code == 302:
            return "in"
        if "Too many failed logins" in body:
            return "locked"
        assert "Please enter the correct" in body, body[:2000]
        return "wrong"

    outcomes = run_in_parallel(GUESSES, guess)
    assert outcomes.count("wrong") <= settings.LOGIN_MAX_FAILURES, outcomes
    assert outcomes.count("wrong") + outcomes.count("in") <= settings.LOGIN_MAX_FAILURES + 1, outcomes
    response = Client().post("/ops/login/", {"username": staff.email, "password": PASSWORD, "next": "/ops/"})
    assert response.status_code == 200 and "Too many failed logins" in response.content.decode()


@pytest.mark.django_db
def test_ops_login_locks_out_after_five_failures(client, settings, store):
    staff = User.objects.create_superuser("operator@example.com", PASSWORD)
    for _ in range(settings.LOGIN_MAX_FAILURES):
        response = client.post("/ops/login/", {"username": staff.email, "password": "wrong", "next": "/ops/"})
        assert "Please enter the correct" in response.content.decode()
    response = client.post("/ops/login/", {"username": staff.email, "password": PASSWORD, "next": "/ops/"})
    assert "Too many failed logins" in response.content.decode()
    assert client.get("/ops/").status_code == 302


@pytest.mark.django_db
def test_a_successful_login_does_not_use_up_the_allowance(client, settings):
    member = MembershipFactory()
    for _ in range(settings.LOGIN_MAX_FAILURES * 3):
        assert Client().post("/console/login", {"email": member.user.email, "password": PASSWORD}).status_code == 302
    for _ in range(settings.LOGIN_MAX_FAILURES - 1):
        Client().post("/console/login", {"email": member.user.email, "password": "wrong"})
    assert Client().post("/console/login", {"email": member.user.email, "password": PASSWORD}).status_code == 302


def _signup_body(index: int, **overrides) -> dict:
    return {"email": f"parallel{index}@example.com", "password": "a-long-enough-passphrase",
            "organization_name": f"Parallel {index}", "site": "global", "country": "DE", **overrides}


@pytest.mark.django_db(transaction=True)
def test_parallel_signups_cannot_pass_the_hourly_limit(store):
    limits = {"credential": "1000/min", "ip": "1000/min", "signup": "20/hour"}
    with override_settings(API_RATE_LIMITS=limits):
        statuses = run_in_parallel(
            40, lambda index: Client().post("/api/v1/signup", _signup_body(index),
                                            content_type="application/json").status_code)
    assert statuses.count(201) == 20, statuses
    assert statuses.count(429) == 20, statuses


# --- signup cannot enumerate addresses --------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize("bad", [{"password": "short"}, {"password": "password123"}, {"country": "1x"},
                                 {"organization_name": ""}])
def test_signup_judges_the_whole_body_before_saying_an_address_is_taken(anon, bad):
    MembershipFactory(user__email="taken@example.com")
    response = anon.post("/api/v1/signup", _signup_body(0, email="taken@example.com", **bad), format="json")
    assert response.status_code == 400, response.json()
    assert "email" not in response.json().get("errors", {})
    # With a body that would succeed, the contract's 409 stays.
    response = anon.post("/api/v1/signup", _signup_body(0, email="taken@example.com"), format="json")
    assert response.status_code == 409


@pytest.mark.django_db
def test_console_signup_judges_the_whole_body_before_saying_an_address_is_taken():
    MembershipFactory(user__email="taken@example.com")
    response = Client().post("/console/signup", _signup_body(0, email="taken@example.com", password="password123"))
    assert response.status_code == 400
    assert "already exists" not in response.content.decode()


@pytest.mark.django_db
def test_every_signup_answer_counts_toward_the_limit(anon, store):
    MembershipFactory(user__email="taken@example.com")
    with override_settings(API_RATE_LIMITS={"credential": "1000/min", "ip": "1000/min", "signup": "3/hour"}):
        assert anon.post("/api/v1/signup", _signup_body(1), format="json").status_code == 201
        assert anon.post("/api/v1/signup", _signup_body(2, password="short"), format="json").status_code == 400
        assert anon.post("/api/v1/signup", _signup_body(3, email="taken@example.com"),
                         format="json").status_code == 409
        response = anon.post("/api/v1/signup", _signup_body(4, email="taken@example.com"), format="json")
        assert response.status_code == 429 and int(response["Retry-After"]) > 60


@pytest.mark.django_db
def test_console_signups_share_the_per_ip_limit(anon, store):
    MembershipFactory(user__email="taken@example.com")
    client = Client()
    with override_settings(API_RATE_LIMITS={"credential": "1000/min", "ip": "1000/min", "signup": "2/hour"}):
        form = _signup_body(1, email="taken@example.com")
        response = client.post("/console/signup", form)
        assert response.status_code == 400 and "already exists" in response.content.decode()
        assert anon.post("/api/v1/signup", _signup_body(2), format="json").status_code == 201
        response = client.post("/console/signup", form)
        assert response.status_code == 429 and "already exists" not in response.content.decode()
        assert int(response["Retry-After"]) > 60
