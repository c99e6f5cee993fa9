"""Every write to tenancy data. Keyword-only, atomic, audited; outside work is enqueued on commit."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from controlplane import errors, ratelimit
from controlplane.db import save_or_conflict
from projects import selectors
from projects.audit import audit_record  # noqa: F401 re-exported during the move
from projects.authentication import generate_api_key_secret
from projects.models import ApiKey, AuditEvent, Invitation, Membership, Organization, Project, User
from projects.roles import Perm, Role, role_can_grant
from projects.tenancy import Principal


# --- audit ------------------------------------------------------------------------------------------
# The writer, audit_record, lives in projects.audit; these helpers build what the services record.
def _diff(instance: models.Model, updates: dict[str, Any]) -> dict[str, list[Any]]:
    """Apply ``updates`` to ``instance`` and return ``{field: [old, new]}`` for what really changed."""
    changes: dict[str, list[Any]] = {}
    for field, new in updates.items():
        old = getattr(instance, field)
        if old != new:
            changes[field] = [old, new]
            setattr(instance, field, new)
    return changes


def _full_clean(instance: models.Model, **kwargs) -> None:
    try:
        instance.full_clean(**kwargs)
    except DjangoValidationError as exc:
        raise errors.ValidationFailed(
            "The request has invalid fields.",
            errors={f: [str(m) for e in errs for m in e.messages] for f, errs in exc.error_dict.items()}
            if hasattr(exc, "error_dict")
            else {"non_field_errors": list(exc.messages)},
        ) from exc


def password_validate(password: str, user: User | None = None, field: str = "password") -> None:
    try:
        password_validation.validate_password(password, user=user)
    except DjangoValidationError as exc:
        raise errors.ValidationFailed("The password is too weak.", errors={field: list(exc.messages)}) from exc


# --- signup and organization ------------------------------------------------------------------------
def signup(
    *,
    email: str,
    password: str,
    organization_name: str,
    site: str,
    country: str,
    name: str = "",
    ip: str | None = None,
    user_agent: str = "",
    with_api_key: bool = True,
) -> tuple[Organization, User, ApiKey | None, str | None]:
    """A new customer: user, organization, owner membership, a first project and, with ``with_api_key``, an
    owner API key of the new owner's. The API's signup returns that key, so someone sees it; the console's
    passes False, since a key whose secret nobody ever sees is only a liability."""
    email = User.objects.normalize_email(email).lower()
    # The whole body is judged before the address is looked up: a 409 must not answer a request that
    # would fail anyway, or weak throwaway bodies could probe which addresses have accounts.
    probe = User(email=email, name=name)
    password_validate(password, probe)
    organization = Organization(name=organization_name, site=site, country=country.upper())
    _full_clean(organization)
    if User.objects.filter(email=email).exists():
        raise errors.Conflict("An account with this email already exists; log in instead.",
                              errors={"email": ["An account with this email already exists."]})
    with transaction.atomic():
        organization.save()
        try:
            user = User.objects.create_user(email=email, password=password, name=name)
        except IntegrityError as exc:  # two signups raced for the same address
            raise errors.Conflict("An account with this email already exists; log in instead.") from exc
        except DjangoValidationError as exc:
            raise errors.ValidationFailed("The request has invalid fields.",
                                          errors={k: list(v) for k, v in exc.message_dict.items()}) from exc
        membership = Membership.objects.create(organization=organization, user=user, role=Role.OWNER)
        principal = Principal.for_membership(membership, ip=ip, user_agent=user_agent)
        audit_record(principal=principal, action="organization.create", target=organization,
                     changes={"name": organization.name, "site": organization.site, "country": organization.country})
        project = Project.objects.create(organization=organization, name="Default project",
                                         description="Created with the organization.")
        added = _project_created(project=project)
        audit_record(principal=principal, action="project.create", target=project,
                     changes={"name": project.name, **added})
        api_key, secret = (api_key_create(principal=principal, name="Default key", role=Role.OWNER)
                            if with_api_key else (None, None))
    return organization, user, api_key, secret


def organization_update(*, principal: Principal, name: str | None = None, country: str | None = None) -> Organization:
    principal.require(Perm.ORGANIZATION_MANAGE)
    with transaction.atomic():
        organization = Organization.objects.select_for_update().get(pk=principal.organization.pk)
        updates = {k: v for k, v in {"name": name, "country": country.upper() if country else None}.items()
                   if v is not None}
        changes = _diff(organization, updates)
        if changes:
            _full_clean(organization)
            organization.save()
            audit_record(principal=principal, action="organization.update", target=organization, changes=changes)
    return organization


# --- projects ---------------------------------------------------------------------------------------
def project_create(*, principal: Principal, name: str, description: str = "") -> Project:
    principal.require(Perm.PROJECTS_WRITE)
    if principal.is_project_limited:
        raise errors.PermissionDenied("Members limited to some projects cannot create projects.")
    project = Project(organization=principal.organization, name=name.strip(), description=description)
    _full_clean(project, validate_constraints=False)
    with transaction.atomic():
        save_or_conflict(project, errors.Conflict(f"A project named {project.name!r} already exists.",
                                                  errors={"name": ["A project with this name already exists."]}))
        added = _project_created(project=project)
        audit_record(principal=principal, action="project.create", target=project,
                     changes={"name": project.name, "description": project.description, **added})
    return project


def _project_created(*, project: Project) -> dict[str, Any]:
    """What other apps add to a new project, in its transaction (the default alert rules); returns it for the
    project's audit event, which covers it.

    Imported here, not at the top: ``alerts`` builds on ``projects`` (audit, tenancy), so a module-level import
    of it from this module would be a cycle; at call time both are loaded.
    """
    from alerts.services.defaults import project_default_rules_create

    return {"alert_rules": project_default_rules_create(project=project)}


def project_update(*, principal: Principal, project: Project, name: str | None = None,
                   description: str | None = None) -> Project:
    principal.require(Perm.PROJECTS_WRITE)
    updates: dict[str, Any] = {}
    if name is not None:
        updates["name"] = name.strip()
    if description is not None:
        updates["description"] = description
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=project.pk, organization=principal.organization)
        if "name" in updates and updates["name"] != project.name and Project.objects.filter(
            organization=principal.organization, name=updates["name"]
        ).exists():
            raise errors.Conflict(f"A project named {updates['name']!r} already exists.",
                                  errors={"name": ["A project with this name already exists."]})
        changes = _diff(project, updates)
        if changes:
            _full_clean(project, validate_constraints=False)
            # A concurrent request may have taken the name since the check above.
            save_or_conflict(project, errors.Conflict(f"A project named {project.name!r} already exists.",
                                                      errors={"name": ["A project with this name already exists."]}))
            audit_record(principal=principal, action="project.update", target=project, changes=changes)
    return project


def project_delete(*, principal: Principal, project: Project) -> None:
    principal.require(Perm.PROJECTS_WRITE)
    if principal.is_project_limited:
        # Deleting its own last project would leave a limited member with nothing, and is a decision about
        # the organization's structure: organization-wide roles make it.
        raise errors.PermissionDenied("Members limited to some projects cannot delete projects.")
    from deployments.selectors import deployment_count_for_project

    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=project.pk, organization=principal.organization)
        count = deployment_count_for_project(project_id=project.id)
        if count:
            raise errors.Conflict(f"The project still has {count} deployment(s); delete them first.")
        # Imported here for the same reason as in _project_created (alerts builds on projects).
        from alerts.services.defaults import organization_rules_rehome

        # Organization-wide alert rules (payment_failed) must outlive the project they are stored on.
        moved = organization_rules_rehome(project=project)
        limits = _limits_lost_with(project)
        audit_record(principal=principal, action="project.delete", target=project,
                     changes={"name": project.name, **({"alert_rules_moved": moved} if moved else {}), **limits})
        project.delete()


def _limits_lost_with(project: Project) -> dict[str, Any]:
    """Who loses access with the project: the members, live keys and pending invitations limited to it, and
    of those, the ones it was the last project of; they stay limited and now see no project at all."""
    grants = {
        "members": Membership.objects.all(),
        "api_keys": ApiKey.objects.filter(revoked_at__isnull=True),
        "invitations": Invitation.objects.filter(status=Invitation.Status.PENDING),
    }
    lost: dict[str, list[str]] = {}
    none_left: dict[str, list[str]] = {}
    for label, qs in grants.items():
        ids = qs.filter(organization_id=project.organization_id, limited_to_projects=True, projects=project)
        # Counted apart from the filter above, which would restrict the count to this project's row.
        counted = list(qs.model.objects.filter(pk__in=ids.values("pk")).annotate(
            project_count=models.Count("projects")).order_by("pk").values_list("pk", "project_count"))
        lost[label] = [pk for pk, _ in counted]
        none_left[label] = [pk for pk, count in counted if count == 1]
    if not any(lost.values()):
        return {}
    return {"access_lost": lost, "now_without_projects": none_left}


# --- members ----------------------------------------------------------------------------------------
def _check_grant(principal: Principal, role: str, limit: frozenset[str] | None) -> None:
    """Nobody hands out (or touches) more than they hold: the role, and the project limit (None: all)."""
    if not role_can_grant(principal.role, role):
        raise errors.PermissionDenied(f"Your role ({principal.role}) cannot grant the role {role}.")
    if principal.is_project_limited and (limit is None or not limit <= principal.project_ids):
        raise errors.PermissionDenied("You can only grant access to projects you are limited to.")


def _limit_of(projects: list[Project]) -> frozenset[str] | None:
    """The limit a grant's ``projects`` list means: empty is every project (see ProjectLimited)."""
    return frozenset(p.id for p in projects) or None


def may_grant(*, principal: Principal, role: str, limit: frozenset[str] | None) -> bool:
    """Whether ``principal`` may hand out ``role`` with the project ``limit`` (None: every project), or touch a
    member or key that holds them: the check the member, invitation and key services make, for pages that
    hide what would be refused."""
    try:
        _check_grant(principal, role, limit)
    except errors.PermissionDenied:
        return False
    return True


def _owner_count(organization: Organization) -> int:
    # Lock the owners' rows: two owners demoting each other at once must not both see "another owner".
    owners = Membership.objects.select_for_update().filter(organization=organization, role=Role.OWNER)
    return len(owners.values_list("pk", flat=True))


def member_update(*, principal: Principal, member: Membership, role: str | None = None,
                  projects: list[Project] | None = None) -> Membership:
    principal.require(Perm.MEMBERS_MANAGE)
    with transaction.atomic():
        member = Membership.objects.select_for_update().get(pk=member.pk, organization=principal.organization)
        old_limit = member.project_limit()
        # Touching someone whose current rights exceed yours is an escalation too.
        _check_grant(principal, member.role, old_limit)
        new_role = role if role is not None else member.role
        new_limit = _limit_of(projects) if projects is not None else old_limit
        _check_grant(principal, new_role, new_limit)
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
        member = Membership.objects.select_for_update().get(pk=member.pk, organization=principal.organization)
        if not is_self:
            _check_grant(principal, member.role, member.project_limit())
        if member.role == Role.OWNER and _owner_count(principal.organization) <= 1:
            raise errors.Conflict("The organization must keep at least one owner.")
        audit_record(principal=principal, action="member.remove", target=member,
                     changes={"user": member.user.email, "role": member.role})
        # A key acts for its creator; once the creator is gone it must not act for nobody.
        for api_key in ApiKey.objects.select_for_update().filter(created_by=member, revoked_at__isnull=True):
            _api_key_mark_revoked(principal=principal, api_key=api_key, reason="creator left" if is_self
                                  else "creator removed", creator=member)
        member.delete()


# --- invitations ------------------------------------------------------------------------------------
def invitation_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_create(*, principal: Principal, email: str, role: str, projects: list[Project]) -> Invitation:
    principal.require(Perm.MEMBERS_MANAGE)
    _check_grant(principal, role, _limit_of(projects))
    email = User.objects.normalize_email(email).lower()
    if Membership.objects.filter(organization=principal.organization, user__email=email).exists():
        raise errors.Conflict(f"{email} is already a member.", errors={"email": ["Already a member."]})
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        organization=principal.organization,
        email=email,
        role=role,
        token_hash=invitation_token_hash(token),
        token_encrypted=token,
        invited_by=principal.user,
        expires_at=timezone.now() + timedelta(seconds=settings.INVITATION_TTL_SECONDS),
    )
    _full_clean(invitation, validate_constraints=False)
    with transaction.atomic():
        save_or_conflict(invitation, errors.Conflict(
            f"{email} already has a pending invitation; revoke it to send a new one.",
            errors={"email": ["Already invited."]}))
        invitation.set_project_limit(projects)
        audit_record(principal=principal, action="invitation.create", target=invitation,
                     changes={"email": email, "role": role, "projects": [p.id for p in projects]})
        from projects.tasks import invitation_send_email

        transaction.on_commit(lambda: invitation_send_email.delay(invitation.id))
    return invitation


def invitation_revoke(*, principal: Principal, invitation: Invitation) -> Invitation:
    principal.require(Perm.MEMBERS_MANAGE)
    with transaction.atomic():
        invitation = Invitation.objects.select_for_update().get(pk=invitation.pk, organization=principal.organization)
        if invitation.status != Invitation.Status.PENDING:
            raise errors.Conflict(f"The invitation is already {invitation.status}.")
        invitation.status = Invitation.Status.REVOKED
        invitation.save(update_fields=["status"])
        audit_record(principal=principal, action="invitation.revoke", target=invitation,
                     changes={"email": invitation.email})
    return invitation


def invitation_mark_sent(*, invitation_id: str) -> None:
    Invitation.objects.filter(pk=invitation_id).update(email_sent_at=timezone.now())


def invitations_expire() -> int:
    """Marks pending invitations past their expiry as expired; returns how many."""
    return Invitation.objects.filter(status=Invitation.Status.PENDING, expires_at__lte=timezone.now()).update(
        status=Invitation.Status.EXPIRED
    )


def invitation_accept(
    *,
    token: str,
    password: str | None = None,
    name: str = "",
    session_user: User | None = None,
    ip: str | None = None,
    user_agent: str = "",
) -> Membership:
    """Turns an invitation into a membership. An existing account proves itself by session or password."""
    from projects.selectors import invitation_get_by_token

    invitation = invitation_get_by_token(token=token)
    existing = User.objects.filter(email=invitation.email).first()
    # Read again after the account: the accept that created it committed the invitation's new status in the
    # same transaction, so a latecomer of a burst gets its 409 here without spending a login attempt (20
    # parallel accepts would otherwise trip the lockout with the right password).
    invitation.refresh_from_db(fields=["status"])
    if invitation.status != Invitation.Status.PENDING:
        raise errors.Conflict(f"This invitation is {invitation.status}; ask for a new one.")
    proven = (existing is not None and session_user is not None and session_user.is_authenticated
              and session_user.pk == existing.pk)
    if existing is not None and not proven:
        if not password:
            raise errors.ValidationFailed(
                "An account with this email exists: log in first, or give its password.",
                errors={"password": ["Required for an existing account."]},
            )
        # Before the transaction: a wrong password rolls it back, and the attempt's count must stay.
        try:
            login_authenticate(email=existing.email, password=password, ip=ip)
        except errors.NotAuthenticated as exc:
            raise errors.NotAuthenticated("The password is not correct.") from exc
        proven = True
    with transaction.atomic():
        invitation = Invitation.objects.select_for_update().select_related("organization").get(pk=invitation.pk)
        if invitation.status == Invitation.Status.PENDING and invitation.is_expired:
            invitation.status = Invitation.Status.EXPIRED
            invitation.save(update_fields=["status"])
        if invitation.status != Invitation.Status.PENDING:
            raise errors.Conflict(f"This invitation is {invitation.status}; ask for a new one.")
        user = User.objects.filter(email=invitation.email).first()
        if user is not None:
            if existing is None or user.pk != existing.pk or not proven:
                raise errors.Conflict("An account with this email was created meanwhile; try again.")
        else:
            if not password:
                raise errors.ValidationFailed("Choose a password for your new account.",
                                              errors={"password": ["Required for a new account."]})
            password_validate(password, User(email=invitation.email, name=name))
            user = User.objects.create_user(email=invitation.email, password=password, name=name)
        if Membership.objects.filter(organization=invitation.organization, user=user).exists():
            raise errors.Conflict("You are already a member of this organization.")
        # The limit is copied as stored: an invitation whose projects were all deleted since gives a member
        # who sees none, not one who sees everything.
        membership = Membership.objects.create(organization=invitation.organization, user=user, role=invitation.role,
                                               limited_to_projects=invitation.limited_to_projects)
        membership.projects.set(invitation.projects.all())
        invitation.status = Invitation.Status.ACCEPTED
        invitation.accepted_at = timezone.now()
        invitation.accepted_by = user
        invitation.save(update_fields=["status", "accepted_at", "accepted_by"])
        principal = Principal.for_membership(membership, ip=ip, user_agent=user_agent)
        audit_record(principal=principal, action="invitation.accept", target=invitation,
                     changes={"email": invitation.email, "role": invitation.role, "member": membership.id})
    return membership


# --- API keys ---------------------------------------------------------------------------------------
def api_key_create(*, principal: Principal, name: str, role: str, projects: list[Project] | None = None,
                   expires_at: datetime | None = None, service: bool = False) -> tuple[ApiKey, str]:
    """Returns the key and its secret; the secret is never stored and never shown again.

    The key belongs to the member behind the principal (a key minted by a key belongs to that key's
    creator). ``service`` makes an organization key with no creator, which only an owner may; a key minted
    by a service key is a service key too, since there is no member to bind it to.
    """
    principal.require(Perm.API_KEYS_MANAGE)
    if service and not principal.has(Perm.API_KEYS_SERVICE):
        raise errors.PermissionDenied("Only an owner can create an organization service key.")
    creator = None if service else principal.acting_member
    if creator is None and not service:
        if principal.api_key is None or not principal.api_key.service:
            raise errors.PermissionDenied("Only a member, or a key of one, can create API keys.")
        service = True
    projects = projects or []
    if principal.is_project_limited and not projects:
        projects = list(Project.objects.filter(organization=principal.organization, id__in=principal.project_ids))
    _check_grant(principal, role, _limit_of(projects))
    if expires_at is not None and expires_at <= timezone.now():
        raise errors.ValidationFailed("expires_at must be in the future.",
                                      errors={"expires_at": ["Must be in the future."]})
    full, prefix, secret_hash = generate_api_key_secret()
    api_key = ApiKey(organization=principal.organization, name=name, role=role, prefix=prefix,
                     secret_hash=secret_hash, created_by=creator, service=service, expires_at=expires_at)
    _full_clean(api_key)
    with transaction.atomic():
        api_key.save()
        api_key.set_project_limit(projects)
        audit_record(principal=principal, action="api_key.create", target=api_key,
                     changes={"name": name, "role": role, "prefix": prefix, "projects": [p.id for p in projects],
                              "expires_at": expires_at, "service": service,
                              "created_by": creator.pk if creator is not None else None})
    return api_key, full


def api_key_revoke(*, principal: Principal, api_key: ApiKey) -> ApiKey:
    principal.require(Perm.API_KEYS_MANAGE)
    with transaction.atomic():
        api_key = ApiKey.objects.select_for_update().get(pk=api_key.pk, organization=principal.organization)
        if not principal.has(Perm.API_KEYS_MANAGE_ALL):
            # Developers revoke their own keys only; the selector, which hides the others, says which.
            if not selectors.api_key_list(principal=principal).filter(pk=api_key.pk).exists():
                raise errors.NotFound(f"No API key {api_key.pk}.")
        _check_grant(principal, api_key.role, api_key.project_limit())
        if api_key.revoked_at is None:
            _api_key_mark_revoked(principal=principal, api_key=api_key)
    return api_key


def _api_key_mark_revoked(*, principal: Principal, api_key: ApiKey, reason: str = "",
                          creator: Membership | None = None) -> None:
    api_key.revoked_at = timezone.now()
    api_key.save(update_fields=["revoked_at"])
    changes: dict[str, Any] = {"name": api_key.name}
    if reason:
        changes |= {"reason": reason, "creator": creator.pk if creator is not None else None}
    audit_record(principal=principal, action="api_key.revoke", target=api_key, changes=changes)


# --- login brute-force protection -------------------------------------------------------------------
def login_lockout_key(email: str) -> str:
    return f"login-failures:email:{hashlib.sha256(email.lower().encode()).hexdigest()}"


def login_authenticate(*, email: str, password: str, ip: str | None, request: Any = None) -> User:
    """The one password check of every login (console, ops site, invitations, password change).

    The attempt is counted against the address and the client IP before the password is looked at
    (``controlplane.ratelimit``: increment, then compare), so parallel guesses cannot all pass a check made
    before any of them was recorded; beyond the limit the password is not checked at all. A right password
    takes its attempt back: only failures use up the allowance.
    """
    window = settings.LOGIN_LOCKOUT_SECONDS
    limit = settings.LOGIN_MAX_FAILURES
    counted = [(login_lockout_key(email), ratelimit.hit(login_lockout_key(email), limit=limit, window=window))]
    if ip:
        # An IP may front many people (an office NAT), so it gets more room than a single address.
        key = f"login-failures:ip:{ip}"
        counted.append((key, ratelimit.hit(key, limit=limit * 4, window=window)))
    refused = [hit for _, hit in counted if not hit.allowed]
    if refused:
        raise LoginLocked("Too many failed logins; try again later.",
                          retry_after=max(hit.retry_after for hit in refused))
    user = authenticate(request, username=email.lower(), password=password)
    if user is None:
        raise errors.NotAuthenticated("The email or the password is not correct.")
    for key, _ in counted:
        ratelimit.refund(key)
    return user


def login_lockout_clear(*, email: str) -> None:
    """Forgets the failed logins of an address (its password was just changed or reset)."""
    ratelimit.reset(login_lockout_key(email))


class LoginLocked(errors.RateLimited):
    title = "Too many failed logins"
    type_slug = "login-locked"


# --- operators --------------------------------------------------------------------------------------
def organization_set_flagship(*, principal: Principal, enabled: bool) -> Organization:
    """Flagship is an invite-only trial: only operators (staff principals) switch it."""
    if principal.actor_type != AuditEvent.ActorType.STAFF:
        raise errors.PermissionDenied("Only operators can enable the flagship tier.")
    with transaction.atomic():
        organization = Organization.objects.select_for_update().get(pk=principal.organization.pk)
        if organization.flagship_enabled != enabled:
            organization.flagship_enabled = enabled
            organization.save(update_fields=["flagship_enabled"])
            audit_record(principal=principal, action="organization.flagship", target=organization,
                         changes={"flagship_enabled": [not enabled, enabled]})
    return organization
