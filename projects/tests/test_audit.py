"""The audit trail: every write leaves an event (actor, action, target, changes, ip); it is append-only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from projects.models import AuditEvent
from projects.roles import Role
from projects.tests.factories import (
    AuditEventFactory,
    InvitationFactory,
    MembershipFactory,
    OrganizationFactory,
    make_api_key,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(make_client):
    org = OrganizationFactory()
    key, secret = make_api_key(org, role=Role.OWNER, name="deploy bot")
    client = make_client(secret)
    client.defaults.update(REMOTE_ADDR="203.0.113.5", HTTP_USER_AGENT="audit-test/1.0")
    return org, key, client


def last_event(org) -> AuditEvent:
    return AuditEvent.objects.filter(organization=org).order_by("-created_at", "-id").first()


def test_every_write_is_recorded(owner):
    org, key, client = owner
    member = MembershipFactory(organization=org, role=Role.VIEWER)
    invitation = InvitationFactory(organization=org)
    project_id = client.post("/api/v1/projects", {"name": "p", "description": "d"}, format="json").json()["id"]
    writes = [
        (lambda: client.patch("/api/v1/organization", {"name": "Renamed"}, format="json"),
         "organization.update", org.id, {"name": [org.name, "Renamed"]}),
        (lambda: client.patch(f"/api/v1/projects/{project_id}", {"description": "e"}, format="json"),
         "project.update", project_id, {"description": ["d", "e"]}),
        (lambda: client.patch(f"/api/v1/members/{member.id}", {"role": "developer"}, format="json"),
         "member.update", member.id, {"role": ["viewer", "developer"]}),
        (lambda: client.post("/api/v1/invitations", {"email": "n@example.com", "role": "viewer"}, format="json"),
         "invitation.create", None, {"email": "n@example.com", "role": "viewer"}),
        (lambda: client.delete(f"/api/v1/invitations/{invitation.id}"),
         "invitation.revoke", invitation.id, {"email": invitation.email}),
        (lambda: client.post("/api/v1/api-keys", {"name": "ci", "role": "viewer"}, format="json"),
         "api_key.create", None, {"name": "ci", "role": "viewer"}),
        (lambda: client.delete(f"/api/v1/members/{member.id}"), "member.remove", member.id, {"role": "developer"}),
        (lambda: client.delete(f"/api/v1/projects/{project_id}"), "project.delete", project_id, {"name": "p"}),
    ]
    for call, action, target_id, changes in writes:
        response = call()
        assert 200 <= response.status_code < 300, (action, response.content)
        event = last_event(org)
        assert event.action == action
        if target_id is None:
            target_id = response.json()["id"]
        assert event.target_id == target_id
        assert event.actor_type == AuditEvent.ActorType.API_KEY
        assert event.actor_id == key.id
        assert "deploy bot" in event.actor_label
        assert event.ip == "203.0.113.5"
        assert event.user_agent == "audit-test/1.0"
        for field, value in changes.items():
            assert event.changes[field] == value, (action, event.changes)


def test_reads_and_refusals_are_not_recorded(owner, make_client):
    org, _, client = owner
    before = AuditEvent.objects.filter(organization=org).count()
    client.get("/api/v1/projects")
    client.get("/api/v1/members")
    _, viewer_secret = make_api_key(org, role=Role.VIEWER)
    make_client(viewer_secret).post("/api/v1/projects", {"name": "x"}, format="json")
    assert AuditEvent.objects.filter(organization=org).count() == before


def test_api_shape_and_filters(owner, session_client):
    org, key, client = owner
    person = MembershipFactory(organization=org, role=Role.ADMIN)
    old = AuditEventFactory(organization=org, action="project.create", target_id="prj_old",
                            created_at=timezone.now() - timedelta(days=3))
    client.post("/api/v1/projects", {"name": "by-key"}, format="json")
    session_client(person.user).post("/api/v1/projects", {"name": "by-person"}, format="json")
    AuditEventFactory()  # another organization's

    def ids(**params):
        response = client.get("/api/v1/audit-events", params)
        assert response.status_code == 200, response.content
        return [e["action"] + ":" + e["target"]["label"] for e in response.json()["results"]]

    everything = client.get("/api/v1/audit-events").json()["results"]
    assert len(everything) == 3
    first = everything[0]
    assert set(first) >= {"id", "action", "actor", "target", "changes", "ip", "created_at"}
    assert first["actor"]["type"] == "user" and first["actor"]["id"] == person.user.id
    assert first["id"].startswith("evt_")
    assert len(ids(actor=key.id)) == 1
    assert len(ids(actor=person.user.email.upper())) == 1
    assert len(ids(action="project.create")) == 3
    assert len(ids(action="project")) == 3
    assert ids(action="member") == []
    assert len(ids(target="prj_old")) == 1
    assert len(ids(since=(timezone.now() - timedelta(days=1)).isoformat())) == 2
    assert old.id not in {e["id"] for e in client.get("/api/v1/audit-events", {"since": timezone.now().isoformat()})
                          .json()["results"]}
    assert client.get("/api/v1/audit-events", {"since": "yesterday"}).status_code == 400


def test_audit_log_is_append_only():
    event = AuditEventFactory()
    event.action = "project.delete"
    with pytest.raises(TypeError):
        event.save()
    with pytest.raises(TypeError):
        event.delete()
    with pytest.raises(TypeError):
        AuditEvent.objects.filter(pk=event.pk).update(action="x")
    with pytest.raises(TypeError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(TypeError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get(pk=event.pk).action == "project.update"


def test_audit_events_cannot_be_written_through_the_api(owner):
    org, _, client = owner
    event = AuditEventFactory(organization=org)
    assert client.post("/api/v1/audit-events", {"action": "x"}, format="json").status_code == 405
    assert client.patch(f"/api/v1/audit-events/{event.id}", {"action": "x"}, format="json").status_code == 405
    assert client.delete(f"/api/v1/audit-events/{event.id}").status_code == 405
