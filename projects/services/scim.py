"""SCIM provisioning: the organization's SCIM token, and the users and groups its identity provider pushes.

Rules (also in the README):
- A SCIM user is a person's membership as the provider sees it. Its login address is its primary email (else
  the first, else the userName when that is an address). Creating one makes the account if the address
  has none (no usable password: the person sets one through "forgot password", or logs in by SSO) and a
  membership, ``viewer`` limited to no project until a group gives more. An existing member is linked as is.
- An admin of the organization maps each SCIM group to a role and projects (``scim_group_grant_set``, the
  API's ``/scim-groups``); the provider cannot: its token would otherwise hand out roles. A member's role is
  the strongest role among their SCIM groups (``projects.roles.ROLE_STRENGTH``), their
  project limit the union of those groups' limits (any unlimited group: every project). Groups without a role
  grant nothing; a member in no group with a role keeps the role they have. Groups never grant ``owner`` and
  SCIM never changes an owner's role: ownership is handed over in the console.
- ``active`` false ends the person's console sessions and removes the membership (the SCIM resource stays);
  the organization's last owner cannot be deactivated or deleted (409). ``active`` true makes the membership
  again from the groups.
Every change is audited with the SCIM token as the actor.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from controlplane import errors
from controlplane.errors import field_invalid
from projects.audit import audit_record
from projects.authentication import hash_secret
from projects.models import AuditEvent, Membership, Project, ScimGroup, ScimToken, ScimUser, User
from projects.roles import Perm, Role, strongest_role
from projects.services.grants import grant_check, grant_limit_of
from projects.services.members import member_remove, member_update
from projects.services.sessions import console_sessions_end_all
from projects.tenancy import Principal

TOKEN_SCHEME = "scim"
_PREFIX_RE = re.compile(r"[0-9a-f]{12}")
#: What a SCIM group may grant: every role but owner.
GROUP_ROLES = tuple(role for role in Role if role != Role.OWNER)


# --- the token ----------------------------------------------------------------------------------------------
def scim_token_create(*, principal: Principal) -> tuple[ScimToken, str]:
    """Creates the organization's SCIM token, or replaces it (the old one stops at once). Returns the row and
    the secret, which is never stored nor shown again. The token acts with its creator's role (an admin's
    token cannot remove owners)."""
    principal.require(Perm.MEMBERS_MANAGE)
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    with transaction.atomic():
        old = ScimToken.objects.select_for_update().filter(organization=principal.organization).first()
        if old is not None:
            old.delete()
        token = ScimToken.objects.create(organization=principal.organization, prefix=prefix,
                                         secret_hash=hash_secret(secret), created_by=principal.user,
                                         role=principal.role)
        audit_record(principal=principal, action="scim_token.rotate" if old is not None else "scim_token.create",
                     target=token, changes={"prefix": prefix, "replaced": old.prefix if old is not None else None})
    return token, f"{TOKEN_SCHEME}_{prefix}_{secret}"


def scim_token_revoke(*, principal: Principal) -> None:
    principal.require(Perm.MEMBERS_MANAGE)
    with transaction.atomic():
        token = ScimToken.objects.select_for_update().filter(organization=principal.organization).first()
        if token is None:
            raise errors.NotFound("The organization has no SCIM token.")
        audit_record(principal=principal, action="scim_token.revoke", target=token, changes={"prefix": token.prefix})
        token.delete()


def scim_token_authenticate(raw: str) -> ScimToken | None:
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_SCHEME or not _PREFIX_RE.fullmatch(parts[1]) or not parts[2]:
        return None
    token = ScimToken.objects.select_related("organization").filter(prefix=parts[1]).first()
    stored = token.secret_hash if token is not None else "0" * 64
    # Compared even without a row, so timing does not tell which prefixes exist.
    if not hmac.compare_digest(hash_secret(parts[2]), stored) or token is None:
        return None
    if token.last_used_at is None or (timezone.now() - token.last_used_at).total_seconds() > 60:
        ScimToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token


def scim_principal(token: ScimToken, *, ip: str | None, user_agent: str) -> Principal:
    return Principal(organization=token.organization, role=token.role, project_ids=None,
                     actor_type=AuditEvent.ActorType.SCIM, ip=ip, user_agent=user_agent,
                     extra={"actor_id": token.pk, "actor_label": f"SCIM token (scim_{token.prefix})"})


# --- users --------------------------------------------------------------------------------------------------
@dataclass
class UserFields:
    user_name: str
    emails: list[dict] = field(default_factory=list)
    external_id: str = ""
    display_name: str = ""
    given_name: str = ""
    family_name: str = ""
    active: bool = True


def _account_email(fields: UserFields) -> str:
    """The login address: the primary email, else the first, else the userName if it is an address."""
    candidates = sorted(fields.emails, key=lambda email: not email.get("primary"))
    values = [str(email.get("value") or "") for email in candidates] + [fields.user_name]
    for value in values:
        address = User.objects.normalize_email(value.strip()).lower()
        if address and "@" in address and len(address) <= 254:
            try:
                validate_email(address)
            except DjangoValidationError:
                continue
            return address
    raise errors.ValidationFailed("Give the person's email address in emails (or as the userName).",
                                  errors={"emails": ["An email address is required."]})


def _check_user_name(principal: Principal, fields: UserFields, exclude: str | None = None) -> None:
    if not fields.user_name.strip() or len(fields.user_name) > 255:
        raise field_invalid("userName", "Required, at most 255 characters.")
    taken = ScimUser.objects.filter(organization=principal.organization, user_name__iexact=fields.user_name)
    if taken.exclude(pk=exclude or "").exists():
        raise errors.Conflict(f"{fields.user_name} is already provisioned.", errors={"userName": ["uniqueness"]})


def scim_user_create(*, principal: Principal, fields: UserFields) -> ScimUser:
    email = _account_email(fields)
    with transaction.atomic():
        _check_user_name(principal, fields)
        user = User.objects.filter(email=email).first()
        if user is None:
            # No password: set_password(None) stores an unusable one until the person resets it.
            user = User.objects.create_user(email=email, password=None, name=fields.display_name[:100])
            audit_record(principal=principal, action="scim.user_account_create", target=user, changes={"email": email})
        if ScimUser.objects.filter(organization=principal.organization, user=user).exists():
            raise errors.Conflict(f"{email} is already provisioned.", errors={"userName": ["uniqueness"]})
        scim_user = ScimUser(organization=principal.organization, user=user)
        _assign(scim_user, fields)
        scim_user.active = False  # _activate below turns it on with its membership
        scim_user.save()
        audit_record(principal=principal, action="scim.user_create", target=scim_user,
                     changes={"user_name": fields.user_name, "email": email, "external_id": fields.external_id,
                              "active": fields.active})
        if fields.active:
            _activate(principal, scim_user)
    return scim_user


def _assign(scim_user: ScimUser, fields: UserFields) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for attr in ("user_name", "emails", "external_id", "display_name", "given_name", "family_name"):
        new = getattr(fields, attr)
        new = new[:255] if isinstance(new, str) else new
        if getattr(scim_user, attr) != new:
            changes[attr] = [getattr(scim_user, attr), new]
            setattr(scim_user, attr, new)
    return changes


def scim_user_replace(*, principal: Principal, scim_user: ScimUser, fields: UserFields) -> ScimUser:
    email = _account_email(fields)
    with transaction.atomic():
        scim_user = ScimUser.objects.select_for_update().select_related("user").get(
            pk=scim_user.pk, organization=principal.organization)
        _check_user_name(principal, fields, exclude=scim_user.pk)
        changes = _assign(scim_user, fields)
        if email != scim_user.user.email:
            changes["email"] = [scim_user.user.email, email]
            _change_email(scim_user, email)
        if changes:
            scim_user.save()
            audit_record(principal=principal, action="scim.user_update", target=scim_user, changes=changes)
        # A membership removed in the console meanwhile (SET_NULL) is made again by an active: true.
        if fields.active and (not scim_user.active or scim_user.membership_id is None):
            _activate(principal, scim_user)
        elif not fields.active and scim_user.active:
            _deactivate(principal, scim_user)
    return scim_user


def _change_email(scim_user: ScimUser, email: str) -> None:
    user = scim_user.user
    # An address is the login of a person who may belong to other organizations: only one provider may move it.
    if Membership.objects.filter(user=user).exclude(organization=scim_user.organization).exists():
        raise errors.Conflict("This person belongs to other organizations too; their address cannot change here.",
                              errors={"emails": ["mutability"]})
    if User.objects.filter(email=email).exclude(pk=user.pk).exists():
        raise errors.Conflict(f"{email} is another account's address.", errors={"emails": ["uniqueness"]})
    user.email = email
    user.save(update_fields=["email"])


def _activate(principal: Principal, scim_user: ScimUser) -> None:
    membership = Membership.objects.filter(organization=principal.organization, user=scim_user.user).first()
    if membership is None:
        # Sees nothing until a group grants more: an empty limit is "no project", never "every project".
        membership = Membership.objects.create(organization=principal.organization, user=scim_user.user,
                                               role=Role.VIEWER, limited_to_projects=True)
        audit_record(principal=principal, action="scim.member_create", target=membership,
                     changes={"user": scim_user.user.email, "role": Role.VIEWER, "projects": []})
    scim_user.membership = membership
    scim_user.active = True
    scim_user.save(update_fields=["membership", "active", "updated_at"])
    audit_record(principal=principal, action="scim.user_activate", target=scim_user,
                 changes={"user": scim_user.user.email, "member": membership.pk})
    _sync_member(principal, scim_user)


def _deactivate(principal: Principal, scim_user: ScimUser) -> None:
    membership = scim_user.membership
    if membership is not None:
        # member_remove refuses the last owner (409) before anything is ended.
        member_remove(principal=principal, member=membership)
        console_sessions_end_all(user=scim_user.user, keep_session_id=None, ip=principal.ip,
                                 user_agent=principal.user_agent,
                                 reason=f"deactivated by SCIM in {principal.organization.name} "
                                        f"({principal.organization.pk})")
    scim_user.membership = None
    scim_user.active = False
    scim_user.save(update_fields=["membership", "active", "updated_at"])
    audit_record(principal=principal, action="scim.user_deactivate", target=scim_user,
                 changes={"user": scim_user.user.email})


def scim_user_delete(*, principal: Principal, scim_user: ScimUser) -> None:
    with transaction.atomic():
        scim_user = ScimUser.objects.select_for_update(of=("self",)).select_related("user", "membership").get(
            pk=scim_user.pk, organization=principal.organization)
        if scim_user.active:
            _deactivate(principal, scim_user)
        groups = list(scim_user.groups.all())
        audit_record(principal=principal, action="scim.user_delete", target=scim_user,
                     changes={"user": scim_user.user.email, "groups": [group.pk for group in groups]})
        scim_user.delete()


def _sync_member(principal: Principal, scim_user: ScimUser) -> None:
    """Gives an active member the role and projects their groups grant (see the module's rules)."""
    membership = scim_user.membership
    if membership is None or membership.role == Role.OWNER:
        return
    granting = [group for group in scim_user.groups.prefetch_related("projects") if group.role]
    role = strongest_role([group.role for group in granting])
    if role is None:
        return
    limits = [group.project_limit() for group in granting]
    projects: list[Project] | None
    if any(limit is None for limit in limits):
        projects = []  # member_update's "every project"
    else:
        ids = set().union(*limits)  # type: ignore[arg-type]
        projects = list(Project.objects.filter(organization=principal.organization, pk__in=ids))
    if projects == [] and not any(limit is None for limit in limits):
        # Every granting group is limited to projects that are all gone: the member sees none.
        member_update(principal=principal, member=membership, role=role)
        if not membership.limited_to_projects or membership.projects.exists():
            membership.set_project_limit([])
            membership.limited_to_projects = True
            membership.save(update_fields=["limited_to_projects"])
            audit_record(principal=principal, action="member.update", target=membership,
                         changes={"projects": [], "limited": True, "user": scim_user.user.email})
        return
    member_update(principal=principal, member=membership, role=role, projects=projects)


# --- groups -------------------------------------------------------------------------------------------------
@dataclass
class GroupFields:
    display_name: str
    external_id: str = ""
    member_ids: list[str] | None = None  # None: leave the members as they are


def _check_group_fields(principal: Principal, fields: GroupFields) -> list[ScimUser] | None:
    if not fields.display_name.strip():
        raise field_invalid("displayName", "Required.")
    members = None
    if fields.member_ids is not None:
        members = list(ScimUser.objects.filter(organization=principal.organization, pk__in=fields.member_ids))
        if len(members) != len(set(fields.member_ids)):
            raise field_invalid("members", "Unknown member; give the id of a provisioned user.")
    return members


def _resync(principal: Principal, scim_users: set[str]) -> None:
    for scim_user in ScimUser.objects.filter(pk__in=scim_users, active=True).select_related("membership", "user"):
        _sync_member(principal, scim_user)


def scim_group_create(*, principal: Principal, fields: GroupFields) -> ScimGroup:
    members = _check_group_fields(principal, fields)
    with transaction.atomic():
        if ScimGroup.objects.filter(organization=principal.organization,
                                    display_name=fields.display_name).exists():
            raise errors.Conflict(f"A group named {fields.display_name!r} exists.",
                                  errors={"displayName": ["uniqueness"]})
        # A new group grants nothing until an admin maps it (scim_group_grant_set).
        group = ScimGroup.objects.create(organization=principal.organization, display_name=fields.display_name,
                                         external_id=fields.external_id)
        group.members.set(members or [])
        audit_record(principal=principal, action="scim.group_create", target=group,
                     changes={"display_name": group.display_name, "members": [m.pk for m in members or []]})
    return group


def scim_group_update(*, principal: Principal, group: ScimGroup, fields: GroupFields) -> ScimGroup:
    members = _check_group_fields(principal, fields)
    with transaction.atomic():
        group = ScimGroup.objects.select_for_update().get(pk=group.pk, organization=principal.organization)
        before = set(group.members.values_list("pk", flat=True))
        changes: dict[str, Any] = {}
        if fields.display_name != group.display_name:
            if ScimGroup.objects.filter(organization=principal.organization,
                                        display_name=fields.display_name).exclude(pk=group.pk).exists():
                raise errors.Conflict(f"A group named {fields.display_name!r} exists.",
                                      errors={"displayName": ["uniqueness"]})
            changes["display_name"] = [group.display_name, fields.display_name]
            group.display_name = fields.display_name
        if fields.external_id != group.external_id:
            changes["external_id"] = [group.external_id, fields.external_id]
            group.external_id = fields.external_id
        group.save()
        after = before
        if members is not None:
            after = {m.pk for m in members}
            group.members.set(members)
            if after != before:
                changes["members"] = {"added": sorted(after - before), "removed": sorted(before - after)}
        if changes:
            audit_record(principal=principal, action="scim.group_update", target=group, changes=changes)
        _resync(principal, before | after)
    return group


def scim_group_grant_set(*, principal: Principal, group: ScimGroup, role: str | None = None,
                         projects: list[Project] | None = None) -> ScimGroup:
    """What a group grants its members, set by an admin of the organization (not by the provider): nobody maps
    a group to more than they hold. The members' roles follow at once."""
    principal.require(Perm.MEMBERS_MANAGE)
    if role and role not in GROUP_ROLES:
        raise field_invalid("role", f"One of {', '.join(GROUP_ROLES)} (a group never grants owner).")
    with transaction.atomic():
        group = ScimGroup.objects.select_for_update().get(pk=group.pk, organization=principal.organization)
        old_role, old_limit = group.role, group.project_limit()
        if group.role:
            grant_check(principal, group.role, old_limit)
        new_role = role if role is not None else group.role
        new_limit = grant_limit_of(projects) if projects is not None else old_limit
        if new_role:
            grant_check(principal, new_role, new_limit)
        group.role = new_role
        group.save(update_fields=["role", "updated_at"])
        if projects is not None:
            group.set_project_limit(projects)
        if (old_role, old_limit) != (new_role, new_limit):
            audit_record(principal=principal, action="scim.group_grant", target=group,
                         changes={"role": [old_role, new_role],
                                  "projects": [sorted(old_limit or ()), sorted(new_limit or ())]})
            _resync(principal, set(group.members.values_list("pk", flat=True)))
    return group


def scim_group_delete(*, principal: Principal, group: ScimGroup) -> None:
    with transaction.atomic():
        group = ScimGroup.objects.select_for_update().get(pk=group.pk, organization=principal.organization)
        members = set(group.members.values_list("pk", flat=True))
        audit_record(principal=principal, action="scim.group_delete", target=group,
                     changes={"display_name": group.display_name, "members": sorted(members)})
        group.delete()
        _resync(principal, members)
