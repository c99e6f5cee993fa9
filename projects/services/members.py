"""Members of an organization: their role and project limit changed, or removed (or leaving)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from controlplane import errors
from controlplane.db import lock_row
from projects.audit import audit_record
from projects.models import ApiKey, Membership, Organization, Project
from projects.roles import Perm, Role
from projects.services.api_keys import api_key_mark_revoked
from projects.services.grants import grant_check, grant_limit_of
from projects.services.sessions import console_sessions_end_all
from projects.tenancy import Principal


def _owner_count(organization: Organization) -> int:
    # Lock the owners' rows: two owners demoting each other at once must not both see "another owner".
    owners = Membership.objects.select_for_update().filter(organization=organization, role=Role.OWNER)
    return len(owners.values_list("pk", flat=True))


def member_update(*, principal: Principal, member: Membership, role: str | None = None,
                  projects: list[Project] | None = None) -> Membership:
    principal.require(Perm.MEMBERS_MANAGE)
    with transaction.atomic():
        member = lock_row(Membership, member.pk, organization=principal.organization)
        old_limit = member.project_limit()
        # Touching someone whose current rights exceed yours is an escalation too.
        grant_check(principal, member.role, old_limit)
        new_role = role if role is not None else member.role
        new_limit = grant_limit_of(projects) if projects is not None else old_limit
        grant_check(principal, new_role, new_limit)
        if member.role == Role.OWNER and new_role != Role.OWNER and _owner_count(principal.organization) <= 1:
            raise errors.Conflict("The organization must keep at least one owner.")
        changes: dict[str, Any] = {}
        if new_role != member.role:
            changes["role"] = [member.role, new_role]
            member.role = new_role
            member.save(update_fields=["role", "updated_at"])
        if projects is not None and old_limit != new_limit:
            changes["projects"] = [sorted(old_limit or ()), sorted(new_limit or ())]
            changes["limited"] = [old_limit is not None, new_limit is not None]
            member.set_project_limit(projects)
        if changes:
            audit_record(principal=principal, action="member.update", target=member,
                         changes={**changes, "user": member.user.email})
    return member


def member_remove(*, principal: Principal, member: Membership) -> None:
    is_self = principal.membership is not None and principal.membership.pk == member.pk
    if not is_self:
        principal.require(Perm.MEMBERS_MANAGE)
    with transaction.atomic():
        member = lock_row(Membership, member.pk, organization=principal.organization)
        if not is_self:
            grant_check(principal, member.role, member.project_limit())
        if member.role == Role.OWNER and _owner_count(principal.organization) <= 1:
            raise errors.Conflict("The organization must keep at least one owner.")
        if principal.organization.end_sessions_on_removal and not is_self:
            # The organization's policy: a removed person keeps no open console, whichever organization it shows.
            console_sessions_end_all(user=member.user, keep_session_id=None, ip=principal.ip,
                                     user_agent=principal.user_agent,
                                     reason=f"removed from {principal.organization.name} ({principal.organization.pk})")
        audit_record(principal=principal, action="member.remove", target=member,
                     changes={"user": member.user.email, "role": member.role})
        # A key acts for its creator; once the creator is gone it must not act for nobody.
        for api_key in ApiKey.objects.select_for_update().filter(created_by=member, revoked_at__isnull=True):
            api_key_mark_revoked(principal=principal, api_key=api_key, reason="creator left" if is_self
                                 else "creator removed", creator=member)
        member.delete()
