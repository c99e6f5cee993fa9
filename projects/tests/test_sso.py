"""Issue 17, item 1: OIDC single sign-on per organization. Every refusal of the callback, against a tiny loopback
OP of the test's own (``tests.oidc_support.BadProvider``) that hands out the crafted ID token; the happy path
and "require SSO" against it too (the real npm OP is driven by the browser test)."""

from __future__ import annotations

import pytest
from django.utils import timezone
from joserfc.jwk import RSAKey

from projects.models import AuditEvent, Membership, SsoConnection, SsoDomain, User
from projects.roles import Role
from projects.services.sso import SsoRefused, sso_begin, sso_complete
from projects.tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, ProjectFactory
from tests.oidc_support import CLIENT_ID, CLIENT_SECRET, BadProvider

pytestmark = pytest.mark.django_db

REDIRECT = "http://testserver/console/sso/callback"


@pytest.fixture
def op():
    with BadProvider() as provider:
        yield provider


def connect(issuer: str, **fields) -> SsoConnection:
    organization = OrganizationFactory(name="Acme")
    SsoDomain.objects.create(organization=organization, domain="acme.test", token_hash="h-acme",
                             verified_at=timezone.now(), verified_by="email")
    return SsoConnection.objects.create(organization=organization, issuer=issuer, client_id=CLIENT_ID,
                                        client_secret=CLIENT_SECRET, **fields)


def attempt(op: BadProvider, connection: SsoConnection, token_for, **params):
    _url, pending = sso_begin(connection=connection, redirect_uri=REDIRECT)
    op.next_id_token = token_for(pending.nonce)
    answer = {"state": pending.state, "code": "c-1", **params}
    return pending, answer


def refused(pending, answer) -> SsoRefused:
    with pytest.raises(SsoRefused) as caught:
        sso_complete(pending=pending, params=answer, redirect_uri=REDIRECT, ip="127.0.0.1")
    return caught.value


def last_refusal(connection: SsoConnection) -> dict:
    event = AuditEvent.objects.filter(organization=connection.organization, action="user.login").latest("created_at")
    assert event.changes["method"] == "sso" and event.changes["result"] == "refused"
    return event.changes


def test_the_authorization_request_uses_pkce_s256_state_and_nonce(op):
    connection = connect(op.issuer)
    url, pending = sso_begin(connection=connection, redirect_uri=REDIRECT)
    assert url.startswith(f"{op.issuer}/auth?")
    for part in ("response_type=code", "code_challenge_method=S256", "code_challenge=", f"state={pending.state}",
                 f"nonce={pending.nonce}", f"client_id={CLIENT_ID}", "scope=openid+email+profile+groups"):
        assert part in url
    assert pending.code_verifier not in url


def test_a_good_token_logs_in_just_in_time_with_the_mapped_role_and_projects(op):
    connection = connect(op.issuer, group_mappings=[{"group": "mq-devs", "role": "developer", "projects": []}])
    project = ProjectFactory(organization=connection.organization)
    connection.group_mappings = [{"group": "mq-devs", "role": "developer", "projects": [project.pk]}]
    connection.save()
    pending, answer = attempt(op, connection, lambda nonce: op.sign(op.claims(nonce)))
    user = sso_complete(pending=pending, params=answer, redirect_uri=REDIRECT, ip="127.0.0.1")
    assert user.email == "ben@acme.test" and not user.has_usable_password()
    membership = Membership.objects.get(user=user, organization=connection.organization)
    assert membership.role == Role.DEVELOPER and membership.project_limit() == frozenset({project.pk})
    login = AuditEvent.objects.filter(action="user.login", actor_id=user.pk).get()
    assert login.changes["method"] == "sso" and login.changes["result"] == "success"
    assert AuditEvent.objects.filter(action="member.join", changes__via="sso").count() == 1


def test_without_a_matching_group_the_default_role(op):
    connection = connect(op.issuer, default_role=Role.VIEWER,
                         group_mappings=[{"group": "mq-admins", "role": "admin"}])
    pending, answer = attempt(op, connection, lambda nonce: op.sign(op.claims(nonce, groups=["other"])))
    user = sso_complete(pending=pending, params=answer, redirect_uri=REDIRECT, ip=None)
    assert Membership.objects.get(user=user).role == Role.VIEWER


@pytest.mark.parametrize(("overrides", "reason", "words"), [
    ({"iss": "http://127.0.0.1:1"}, "token_iss", "issuer"),
    ({"aud": "someone-else"}, "token_aud", "audience"),
    ({"nonce": "not-the-one"}, "token_nonce", "nonce"),
    ({"nonce": None}, "token_nonce", "nonce"),
    ({"email": "eve@evil.test"}, "email_outside_domain", "not on a verified domain"),
    ({"email_verified": False}, "email_unverified", "not verified"),
    ({"email_verified": None}, "email_unverified", "not verified"),
])
def test_a_bad_claim_is_refused_with_a_clear_message_and_audited(op, overrides, reason, words):
    connection = connect(op.issuer)
    pending, answer = attempt(op, connection, lambda nonce: op.sign(op.claims(nonce, **overrides)))
    error = refused(pending, answer)
    assert error.reason == reason and words in error.detail
    assert last_refusal(connection)["reason"] == reason
    assert not User.objects.filter(email="ben@acme.test").exists() or reason.startswith("email")


def test_an_expired_token_is_refused(op):
    connection = connect(op.issuer)
    now = int(timezone.now().timestamp())
    pending, answer = attempt(op, connection,
                              lambda nonce: op.sign(op.claims(nonce, iat=now - 3600, exp=now - 600)))
    error = refused(pending, answer)
    assert error.reason == "token_expired" and "expired" in error.detail


def test_an_unsigned_token_alg_none_is_refused(op):
    connection = connect(op.issuer)
    pending, answer = attempt(op, connection, lambda nonce: op.unsigned(op.claims(nonce)))
    error = refused(pending, answer)
    assert error.reason == "token_alg" and "(none)" in error.detail


def test_a_token_signed_by_a_key_the_op_does_not_own_is_refused(op):
    connection = connect(op.issuer)
    stranger = RSAKey.generate_key(2048, parameters={"kid": "bad-op-1"})
    pending, answer = attempt(op, connection, lambda nonce: op.sign(op.claims(nonce), key=stranger))
    error = refused(pending, answer)
    assert error.reason == "token_signature"


def test_a_replayed_token_and_nonce_are_refused(op):
    connection = connect(op.issuer)
    pending, answer = attempt(op, connection, lambda nonce: op.sign(op.claims(nonce)))
    sso_complete(pending=pending, params=answer, redirect_uri=REDIRECT, ip=None)
    # The same answer and a copy of the pending login (a stolen session): the nonce is spent.
    error = refused(pending, answer)
    assert error.reason == "nonce_reused"


def test_a_missing_or_wrong_state_is_refused(op):
    connection = connect(op.issuer)
    pending, answer = attempt(op, connection, lambda nonce: op.sign(op.claims(nonce)))
    assert refused(pending, {**answer, "state": "forged"}).reason == "state_mismatch"
    assert refused(pending, {"code": "c-1"}).reason == "state_mismatch"
    assert refused(None, answer).reason == "state_unknown"


def test_an_answer_from_another_issuer_is_refused(op):
    connection = connect(op.issuer)
    pending, answer = attempt(op, connection, lambda nonce: op.sign(op.claims(nonce)), iss="http://127.0.0.1:2")
    assert refused(pending, answer).reason == "issuer_mismatch"


def test_a_discovery_document_naming_another_issuer_is_refused(op):
    connection = connect(op.issuer)
    op.discovery_issuer = "http://127.0.0.1:3"
    with pytest.raises(SsoRefused) as caught:
        sso_begin(connection=connection, redirect_uri=REDIRECT)
    assert caught.value.reason == "issuer_mismatch"


def test_the_idp_error_is_shown(op):
    connection = connect(op.issuer)
    pending, answer = attempt(op, connection, lambda nonce: "")
    error = refused(pending, {"state": pending.state, "error": "access_denied",
                              "error_description": "user cancelled"})
    assert error.reason == "idp_error" and "user cancelled" in error.detail


# --- "require SSO" --------------------------------------------------------------------------------------
def test_require_sso_refuses_passwords_of_the_domain_except_break_glass_owners(client, op):
    connection = connect(op.issuer, require_sso=True)
    organization = connection.organization
    MembershipFactory(organization=organization, user__email="dev@acme.test", role=Role.DEVELOPER)
    MembershipFactory(organization=organization, user__email="boss@acme.test", role=Role.OWNER, sso_break_glass=True)
    MembershipFactory(organization=organization, user__email="guest@elsewhere.test", role=Role.VIEWER)

    response = client.post("/console/login", {"email": "dev@acme.test", "password": PASSWORD}, follow=True)
    assert response.redirect_chain[0][0].startswith("/console/login/sso?email=dev%40acme.test")
    assert "requires single sign-on for acme.test" in response.content.decode()
    assert "_auth_user_id" not in client.session
    event = AuditEvent.objects.filter(action="user.login", changes__email="dev@acme.test").latest("created_at")
    assert event.changes["result"] == "sso_required"

    assert client.post("/console/login", {"email": "boss@acme.test", "password": PASSWORD}).status_code == 302
    client.post("/console/logout")
    assert client.post("/console/login", {"email": "guest@elsewhere.test", "password": PASSWORD}).status_code == 302

    connection.require_sso = False
    connection.save()
    client.post("/console/logout")
    assert client.post("/console/login", {"email": "dev@acme.test", "password": PASSWORD}).status_code == 302


def test_the_sso_page_sends_a_domain_with_sso_to_its_idp_and_refuses_others(client, op):
    connect(op.issuer)
    response = client.post("/console/login/sso", {"email": "ben@acme.test"})
    assert response.status_code == 302 and response["Location"].startswith(f"{op.issuer}/auth?")
    assert client.session["sso_pending"]["state"] in response["Location"]
    response = client.post("/console/login/sso", {"email": "ben@nowhere.test"})
    assert response.status_code == 400 and "No single sign-on is set up for nowhere.test" in response.content.decode()


def test_the_callback_takes_the_state_once(client, op):
    connection = connect(op.issuer)
    response = client.post("/console/login/sso", {"email": "ben@acme.test"})
    state = client.session["sso_pending"]["state"]
    op.next_id_token = op.sign(op.claims(client.session["sso_pending"]["nonce"]))
    response = client.get("/console/sso/callback", {"state": state, "code": "c-1"})
    assert response.status_code == 302 and response["Location"] == "/console/"
    client.post("/console/logout")
    response = client.get("/console/sso/callback", {"state": state, "code": "c-1"}, follow=True)
    assert "Single sign-on refused" in response.content.decode()
    # No pending login says which organization it was for: recorded once, outside any organization.
    assert AuditEvent.objects.filter(action="user.login", changes__reason="state_unknown",
                                     organization=None).count() == 1
    assert connection.organization.pk


def test_refusals_of_unknown_logins_are_audited_once_a_minute_per_address():
    for _ in range(3):
        with pytest.raises(SsoRefused):
            sso_complete(pending=None, params={"state": "x", "code": "y"}, redirect_uri=REDIRECT, ip="192.0.2.9")
    assert AuditEvent.objects.filter(action="user.login", changes__reason="state_unknown").count() == 1
