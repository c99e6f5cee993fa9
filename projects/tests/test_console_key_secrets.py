"""The console shows a new key's secret once, after a redirect, and signup mints no key nobody sees
(issue 11, item 17)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from projects.models import ApiKey, Membership
from projects.roles import Role
from tests.support import console_login

pytestmark = pytest.mark.django_db

SIGNUP = {"name": "Ada", "email": "ada@example.com", "password": "a-long-enough-passphrase",
          "organization_name": "Acme", "site": "global", "country": "de"}


def test_reloading_the_created_page_mints_no_second_key_and_shows_the_secret_once():
    client, owner = console_login()
    response = client.post(reverse("console:api-key-create"), {"name": "ci", "role": Role.DEVELOPER})
    assert response.status_code == 302
    shown = client.get(response["Location"])
    assert shown.status_code == 200
    assert "no-store" in shown["Cache-Control"]
    key = ApiKey.objects.get(organization=owner.organization)
    body = shown.content.decode()
    secret = body.split('id="api-key-secret">')[1].split("<")[0]
    assert secret.startswith(f"mqc_{key.prefix}_")
    assert Client().get("/api/v1/organization", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 200

    reloaded = client.get(response["Location"])
    assert reloaded.status_code == 200
    assert secret not in reloaded.content.decode()
    assert "no longer shown" in reloaded.content.decode()
    assert ApiKey.objects.filter(organization=owner.organization).count() == 1


def test_another_member_cannot_read_the_created_page_of_someone_elses_key():
    client, owner = console_login()
    response = client.post(reverse("console:api-key-create"), {"name": "ci", "role": Role.DEVELOPER})
    other = Client()
    other.force_login(Membership.objects.create(organization=owner.organization, user=_user(), role=Role.ADMIN).user)
    body = other.get(response["Location"]).content.decode()
    assert 'id="api-key-secret"' not in body


def test_console_signup_creates_no_unseen_key():
    client = Client()
    response = client.post(reverse("console:signup"), SIGNUP)
    assert response.status_code == 302
    owner = Membership.objects.get(user__email="ada@example.com")
    assert not ApiKey.objects.filter(organization=owner.organization).exists()


def test_api_signup_key_is_the_new_owners(anon):
    response = anon.post("/api/v1/signup", {**SIGNUP, "email": "grace@example.com"}, format="json")
    assert response.status_code == 201, response.content
    owner = Membership.objects.get(user__email="grace@example.com")
    assert response.json()["api_key"]["created_by"] == owner.id
    assert ApiKey.objects.get(organization=owner.organization).created_by == owner


def _user():
    from projects.tests.factories import UserFactory

    return UserFactory()


def test_only_owners_are_offered_service_keys_in_the_console():
    admin_client, _ = console_login(Role.ADMIN)
    assert 'name="service"' not in admin_client.get(reverse("console:api-key-create")).content.decode()
    client, owner = console_login()
    assert 'name="service"' in client.get(reverse("console:api-key-create")).content.decode()
    response = client.post(reverse("console:api-key-create"), {"name": "svc", "role": Role.VIEWER, "service": "on"})
    assert response.status_code == 302
    key = ApiKey.objects.get(organization=owner.organization, name="svc")
    assert key.service is True and key.created_by is None
    assert "Service key" in client.get(reverse("console:api-keys")).content.decode()
