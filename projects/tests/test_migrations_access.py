"""The data migrations of issue 11 (items 2 and 3) on rows as they exist before them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from projects.models import ApiKey, AuditEvent, Invitation, Membership

BEFORE = [("projects", "0001_initial")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_limits_become_explicit_and_keys_get_their_creators_membership():
    old = _migrate(BEFORE)
    try:
        Organization, User = old.get_model("projects", "Organization"), old.get_model("projects", "User")
        OldMembership, Project = old.get_model("projects", "Membership"), old.get_model("projects", "Project")
        OldKey, OldEvent = old.get_model("projects", "ApiKey"), old.get_model("projects", "AuditEvent")
        OldInvitation = old.get_model("projects", "Invitation")
        org = Organization.objects.create(name="Acme", site="global", country="DE")
        project = Project.objects.create(organization=org, name="p")
        owner_user, gone_user, dev_user = (User.objects.create(email=f"{n}@example.com", password="x")
                                           for n in ("owner", "gone", "dev"))
        owner = OldMembership.objects.create(organization=org, user=owner_user, role="owner")
        dev = OldMembership.objects.create(organization=org, user=dev_user, role="developer")
        dev.projects.set([project])
        invitation = OldInvitation.objects.create(organization=org, email="i@example.com", role="viewer",
                                                  token_hash="h" * 64, token_encrypted="t",
                                                  expires_at=timezone.now() + timedelta(days=1))
        invitation.projects.set([project])

        def key(name, created_by=None, projects=()):
            row = OldKey.objects.create(organization=org, name=name, role="developer", prefix=name[:16],
                                        secret_hash="0" * 64, created_by=created_by)
            row.projects.set(projects)
            return row.pk

        owners = key("owners", owner_user)
        limited = key("limited", dev_user, [project])
        left = key("left", gone_user)
        minted_by_key = key("minted")
        OldEvent.objects.create(organization=org, actor_type="api_key", actor_id=owners, action="api_key.create",
                                target_type="apikey", target_id=minted_by_key)
        orphan = key("orphan")
    finally:
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    assert Membership.objects.get(pk=dev.pk).limited_to_projects is True
    assert Membership.objects.get(pk=owner.pk).limited_to_projects is False
    assert Invitation.objects.get(pk=invitation.pk).limited_to_projects is True
    keys = {k.pk: k for k in ApiKey.objects.all()}
    assert keys[owners].created_by_id == owner.pk and not keys[owners].service and keys[owners].is_usable
    assert keys[limited].created_by_id == dev.pk and keys[limited].limited_to_projects is True
    # Made with the owner's key: traced through the audit log to the owner.
    assert keys[minted_by_key].created_by_id == owner.pk and not keys[minted_by_key].service
    # The reported hole: the maker left, so the key goes, and the audit log says why.
    assert keys[left].revoked_at is not None and not keys[left].is_usable
    assert AuditEvent.objects.get(target_id=left, action="api_key.revoke").changes["reason"] == "creator left"
    # Nobody to trace it to: an organization service key, marked, audited, still working.
    assert keys[orphan].service is True and keys[orphan].created_by_id is None and keys[orphan].is_usable
    assert AuditEvent.objects.get(target_id=orphan, action="api_key.update").changes["service"] == [False, True]
