"""The ops site: staff can search and inspect; every staff write is in the audit log."""

from __future__ import annotations

import pytest
from django.contrib.admin.utils import quote  # ids contain _, which the admin escapes

from projects.models import AuditEvent, Organization
from projects.tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory, make_api_key, operator_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    staff = operator_user("ops@example.com", "an-operator-passphrase")
    client.force_login(staff)
    return staff


def test_customers_cannot_open_the_ops_site(client):
    member = MembershipFactory()
    client.force_login(member.user)
    response = client.get("/ops/")
    assert response.status_code == 302 and "/ops/login" in response["Location"]


@pytest.mark.parametrize(
    "path",
    ["organization", "user", "membership", "project", "invitation", "apikey", "auditevent"],
)
def test_every_tenancy_list_renders_with_search(client, operator, path):
    membership = MembershipFactory()
    ProjectFactory(organization=membership.organization)
    make_api_key(membership.organization)
    response = client.get(f"/ops/projects/{path}/", {"q": "org"})
    assert response.status_code == 200


def test_staff_edit_of_an_organization_is_audited(client, operator):
    organization = OrganizationFactory(name="Before", country="DE")
    response = client.post(
        f"/ops/projects/organization/{quote(organization.id)}/change/",
        {"name": "After", "country": "FR", "flagship_enabled": "on",
         "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"},
    )
    assert response.status_code == 302, response.content[:2000]
    # The admin redirects to the list after a save; anywhere else means it did not save.
    assert response["Location"] == "/ops/projects/organization/", (response["Location"],
                                                                  [str(m) for m in response.wsgi_request._messages])
    organization.refresh_from_db()
    assert organization.name == "After"
    event = AuditEvent.objects.get(organization=organization, action="ops.organization.update")
    assert event.actor_type == "staff"
    assert event.actor_label == "ops@example.com"
    assert event.changes["name"] == ["Before", "After"]
    assert event.ip == "127.0.0.1"


def test_revoking_keys_from_the_ops_site_goes_through_the_service(client, operator):
    organization = OrganizationFactory()
    api_key, _ = make_api_key(organization)
    response = client.post("/ops/projects/apikey/", {"action": "revoke_keys", "_selected_action": [api_key.id]})
    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    event = AuditEvent.objects.get(action="api_key.revoke", target_id=api_key.id)
    assert event.actor_type == "staff" and event.organization_id == organization.id


def test_enabling_flagship_is_an_audited_operator_action(client, operator):
    organization = OrganizationFactory()
    client.post("/ops/projects/organization/", {"action": "enable_flagship", "_selected_action": [organization.id]})
    assert Organization.objects.get(pk=organization.pk).flagship_enabled
    assert AuditEvent.objects.filter(action="organization.flagship", organization=organization).exists()


def test_audit_events_cannot_be_changed_from_the_ops_site(client, operator):
    organization = OrganizationFactory()
    make_api_key(organization)
    event = AuditEvent.objects.create(organization=organization, actor_type="system", action="x.y")
    assert client.post(f"/ops/projects/auditevent/{quote(event.id)}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_an_operator_clears_the_ip_allowlist_of_a_locked_out_customer(client, operator):
    organization = OrganizationFactory(ip_allowlist=["192.0.2.0/24"])
    client.post("/ops/projects/organization/", {"action": "clear_ip_allowlist", "_selected_action": [organization.id]})
    assert Organization.objects.get(pk=organization.pk).ip_allowlist == []
    event = AuditEvent.objects.get(action="organization.security_update", organization=organization)
    assert event.actor_type == "staff" and event.changes == {"ip_allowlist": [["192.0.2.0/24"], []]}
