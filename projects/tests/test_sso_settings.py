"""Issue 17, item 1, the settings half: /api/v1/organization/sso and its domains (mail and DNS TXT verification),
the console page, unlinking ending the sessions of the SSO people."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client

from projects.models import AuditEvent, ConsoleSession, SsoConnection, SsoDomain
from projects.roles import Role
from projects.services.sso_settings import sso_domain_check_dns, txt_record_value
from projects.tenancy import Principal
from projects.tests.factories import PASSWORD, MembershipFactory, ProjectFactory, make_api_key
from tests.support import eager_tasks

pytestmark = pytest.mark.django_db

URL = "/api/v1/organization/sso"
BODY = {"issuer": "https://idp.acme.test", "client_id": "mqcloud", "client_secret": "s3cret-value",
        "group_mappings": [{"group": "mq-admins", "role": "admin"}]}


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    return response.json()


@pytest.fixture
def owner():
    return MembershipFactory(role=Role.OWNER, user__email="owner@acme.test")


def _verified(owner, client, capture) -> SsoDomain:
    with eager_tasks(), capture(execute=True):
        response = client.post(f"{URL}/domains", {"domain": "Acme.TEST", "mailbox": "hostmaster"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["verified"] is False
    assert mail.outbox[-1].to == ["hostmaster@acme.test"]
    link = re.search(r"/console/sso/domains/verify/([A-Za-z0-9_-]+)", mail.outbox[-1].body).group(0)
    page = Client().get(link)
    assert "Verify acme.test" in page.content.decode()
    assert not SsoDomain.objects.get().verified_at  # a GET (a mail scanner) changes nothing
    assert "acme.test is verified" in Client().post(link).content.decode()
    sso_domain = SsoDomain.objects.get()
    assert sso_domain.verified_by == "email"
    assert AuditEvent.objects.filter(action="sso_domain.verify", organization=owner.organization).count() == 1
    return sso_domain


def test_set_up_read_change_and_the_secret_never_comes_back(owner, session_client):
    client = session_client(owner.user)
    _problem(client.get(URL), 404)
    body = client.put(URL, BODY, format="json").json()
    assert body["issuer"] == BODY["issuer"] and "client_secret" not in body
    assert body["redirect_uri"].endswith("/console/sso/callback")
    assert SsoConnection.objects.get().client_secret == "s3cret-value"
    event = AuditEvent.objects.get(action="sso.create")
    assert "s3cret-value" not in str(event.changes)
    body = client.put(URL, {**BODY, "client_secret": None} | {"groups_claim": "roles"}, format="json")
    assert body.status_code == 400  # null is not a secret; omit it to keep the stored one
    no_secret = {k: v for k, v in BODY.items() if k != "client_secret"}
    assert client.put(URL, {**no_secret, "groups_claim": "roles"}, format="json").json()["groups_claim"] == "roles"
    assert SsoConnection.objects.get().client_secret == "s3cret-value"


@pytest.mark.parametrize(("change", "field"), [
    ({"issuer": "http://idp.acme.test"}, "issuer"),
    ({"group_mappings": [{"group": "x", "role": "owner"}]}, "group_mappings"),
    ({"default_role": "owner"}, "default_role"),
    ({"group_mappings": [{"group": "x", "role": "developer", "projects": ["prj_nope"]}]}, "group_mappings"),
    ({"require_sso": True}, "require_sso"),
])
def test_bad_settings_are_a_400_naming_the_field(owner, session_client, change, field):
    body = _problem(session_client(owner.user).put(URL, {**BODY, **change}, format="json"), 400)
    assert any(key.startswith(field) for key in body["errors"]), body
    assert not SsoConnection.objects.exists()


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.VIEWER, Role.BILLING])
def test_only_owners_and_admins(session_client, role):
    member = MembershipFactory(role=role)
    _problem(session_client(member.user).get(URL), 403)
    _problem(session_client(member.user).put(URL, BODY, format="json"), 403)
    _problem(session_client(member.user).get(f"{URL}/domains"), 403)


def test_domain_verified_by_mail_then_require_sso_with_a_break_glass_owner(owner, session_client,
                                                                         django_capture_on_commit_callbacks):
    client = session_client(owner.user)
    _verified(owner, client, django_capture_on_commit_callbacks)
    body = client.put(URL, {**BODY, "require_sso": True, "break_glass_member_ids": [owner.pk]}, format="json")
    assert body.status_code == 200, body.content
    assert body.json()["break_glass_member_ids"] == [owner.pk]
    developer = MembershipFactory(organization=owner.organization, role=Role.DEVELOPER)
    _problem(client.put(URL, {**BODY, "break_glass_member_ids": [developer.pk]}, format="json"), 400)


def test_another_organization_cannot_claim_a_verified_domain(owner, session_client, django_capture_on_commit_callbacks):
    _verified(owner, session_client(owner.user), django_capture_on_commit_callbacks)
    other = MembershipFactory(role=Role.OWNER)
    _problem(session_client(other.user).post(f"{URL}/domains", {"domain": "acme.test"}, format="json"), 409)


def test_domain_verified_by_a_dns_txt_record_through_the_given_resolver(owner, session_client):
    client = session_client(owner.user)
    body = client.post(f"{URL}/domains", {"domain": "acme.test", "mailbox": None}, format="json").json()
    assert body["txt_record"].startswith("mqcloud-verification=") and body["verification_email"] == ""
    assert not mail.outbox
    sso_domain = SsoDomain.objects.get()
    principal = Principal.for_membership(owner)
    asked = []

    def resolver(records):
        return lambda name: asked.append(name) or records

    with pytest.raises(Exception, match="No TXT record"):
        sso_domain_check_dns(principal=principal, sso_domain=sso_domain, resolve_txt=resolver(["v=spf1 -all"]))
    sso_domain_check_dns(principal=principal, sso_domain=sso_domain,
                         resolve_txt=resolver(["v=spf1 -all", txt_record_value(sso_domain)]))
    assert asked == ["acme.test", "acme.test"]
    assert SsoDomain.objects.get().verified_by == "dns"


def test_unlinking_ends_the_sessions_of_the_domains_people(owner, session_client, django_capture_on_commit_callbacks):
    client = session_client(owner.user)
    _verified(owner, client, django_capture_on_commit_callbacks)
    client.put(URL, BODY, format="json")
    sso_person = MembershipFactory(organization=owner.organization, user__email="dora@acme.test", role=Role.VIEWER)
    outsider = MembershipFactory(organization=owner.organization, user__email="guest@else.test", role=Role.VIEWER)
    for user in (sso_person.user, outsider.user):
        Client().post("/console/login", {"email": user.email, "password": PASSWORD})
    assert ConsoleSession.objects.filter(user=sso_person.user).count() == 1
    assert client.delete(URL).status_code == 204
    assert not ConsoleSession.objects.filter(user=sso_person.user).exists()
    assert ConsoleSession.objects.filter(user=outsider.user).count() == 1
    assert not SsoConnection.objects.exists()
    event = AuditEvent.objects.get(action="sso.delete")
    assert event.changes["sessions_ended"] == 1


def test_api_keys_are_unaffected_by_require_sso(owner, session_client, django_capture_on_commit_callbacks, make_client):
    client = session_client(owner.user)
    _verified(owner, client, django_capture_on_commit_callbacks)
    client.put(URL, {**BODY, "require_sso": True}, format="json")
    _key, secret = make_api_key(owner.organization, role=Role.OWNER)
    assert make_client(secret).get("/api/v1/projects").status_code == 200


def test_the_console_page_saves_and_lists_domains(owner):
    project = ProjectFactory(organization=owner.organization)
    browser = Client()
    browser.force_login(owner.user)
    page = browser.get("/console/settings/sso")
    assert page.status_code == 200 and "/console/sso/callback" in page.content.decode()
    response = browser.post("/console/settings/sso", {
        "issuer": "https://idp.acme.test", "client_id": "mqcloud", "client_secret": "shh", "groups_claim": "groups",
        "default_role": "viewer", "group_mappings": f"mq-admins = admin\nmq-iot = developer: {project.pk}"})
    assert response.status_code == 302, response.content.decode()
    connection = SsoConnection.objects.get()
    assert connection.group_mappings == [{"group": "mq-admins", "role": "admin", "projects": []},
                                         {"group": "mq-iot", "role": "developer", "projects": [project.pk]}]
    browser.post("/console/settings/sso/domains", {"domain": "acme.test", "mailbox": "admin"})
    page = browser.get("/console/settings/sso").content.decode()
    assert "acme.test" in page and "mail sent to admin@acme.test" in page and "mqcloud-verification=" in page
    assert "mq-iot = developer: " + project.pk in page
