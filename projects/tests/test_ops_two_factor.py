"""Issue 17, item 2: the ops site requires two-factor login of every operator. An operator without it is taken
from the right password to setting it up (the password just typed is the proof; nothing opens before the first
right code), and a session of a staff account without it (a console login, say) does not open the ops site."""

from __future__ import annotations

import pyotp
import pytest
from django.test import Client

from projects.models import AuditEvent, TwoFactorDevice, User
from projects.tests.factories import PASSWORD, operator_user

pytestmark = pytest.mark.django_db

LOGIN = "/ops/login/"
SETUP = "/ops/two-factor/setup/"


def _password(client: Client, user: User, next_url: str = "/ops/projects/organization/"):
    return client.post(LOGIN, {"username": user.email, "password": PASSWORD, "next": next_url})


def test_an_operator_without_two_factor_sets_it_up_before_the_ops_site_opens():
    staff = User.objects.create_user("ops@example.com", PASSWORD, is_staff=True)
    browser = Client()
    response = _password(browser, staff)
    assert response.status_code == 302 and response["Location"] == SETUP
    # Half-way: the password alone opened nothing.
    assert browser.get("/ops/")["Location"].startswith(LOGIN)
    page = browser.get(SETUP)
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    body = page.content.decode()
    device = TwoFactorDevice.objects.get(user=staff)
    assert device.confirmed_at is None and "<svg" in body
    assert " ".join(device.secret[i:i + 4] for i in range(0, len(device.secret), 4)) in body
    # A reload shows the same secret: the app may already hold it.
    browser.get(SETUP)
    assert TwoFactorDevice.objects.get(user=staff).secret == device.secret

    wrong = browser.post(SETUP, {"code": "000000" if pyotp.TOTP(device.secret).now() != "000000" else "111111"})
    assert wrong.status_code == 200 and "not correct" in wrong.content.decode()
    assert browser.get("/ops/")["Location"].startswith(LOGIN)

    done = browser.post(SETUP, {"code": pyotp.TOTP(device.secret).now()})
    assert done.status_code == 200
    body = done.content.decode()
    assert "recovery" in body.lower() and 'href="/ops/projects/organization/"' in body
    assert browser.get("/ops/").status_code == 200
    assert TwoFactorDevice.objects.get(user=staff).confirmed_at is not None
    assert AuditEvent.objects.filter(action="two_factor.enrol", actor_label__contains=staff.email).exists()


def test_a_staff_session_without_two_factor_does_not_open_the_ops_site():
    staff = User.objects.create_user("ops@example.com", PASSWORD, is_staff=True)
    browser = Client()
    browser.force_login(staff)  # e.g. logged in on the console, which asks no code of an account without it
    assert browser.get("/ops/")["Location"].startswith(LOGIN)
    assert browser.get("/ops/overview/")["Location"].startswith(LOGIN)
    # With two-factor on, the same kind of session opens it (its login asked for the code).
    with_code = Client()
    with_code.force_login(operator_user("root@example.com"))
    assert with_code.get("/ops/").status_code == 200


def test_the_setup_page_opens_only_right_after_the_password():
    staff = User.objects.create_user("ops@example.com", PASSWORD, is_staff=True)
    assert Client().get(SETUP)["Location"] == LOGIN
    # A console session of the same person is not the proof: its holder may not be the person.
    browser = Client()
    browser.force_login(staff)
    assert browser.get(SETUP)["Location"] == LOGIN
    assert not TwoFactorDevice.objects.filter(user=staff).exists()


def test_a_customer_without_staff_is_not_offered_the_setup():
    customer = User.objects.create_user("ada@example.com", PASSWORD)
    response = _password(Client(), customer)
    assert response.status_code == 200 and not TwoFactorDevice.objects.filter(user=customer).exists()


def test_an_operator_with_two_factor_logs_in_with_the_code_as_before():
    staff = operator_user()
    browser = Client()
    response = browser.post(LOGIN, {"username": staff.email, "password": PASSWORD, "code": staff.totp.now(),
                                    "next": "/ops/"})
    assert response.status_code == 302 and response["Location"] == "/ops/"
    assert browser.get("/ops/").status_code == 200
