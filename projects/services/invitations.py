"""Invitations: sent by members who may grant what they offer, revoked, expired, and accepted by new or
existing accounts."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from controlplane import errors
from controlplane.db import lock_row, save_or_conflict
from controlplane.errors import field_invalid
from controlplane.queue import enqueue_on_commit
from projects import selectors
from projects.audit import audit_record
from projects.authentication import invitation_token_hash
from projects.models import Invitation, Membership, Project, User
from projects.roles import Perm
from projects.services.grants import grant_check, grant_limit_of
from projects.services.logins import login_authenticate
from projects.services.validation import model_full_clean, password_validate
from projects.tenancy import Principal


def invitation_create(*, principal: Principal, email: str, role: str, projects: list[Project]) -> Invitation:
    principal.require(Perm.MEMBERS_MANAGE)
    grant_check(principal, role, grant_limit_of(projects))
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
    model_full_clean(invitation, validate_constraints=False)
    with transaction.atomic():
        save_or_conflict(invitation, errors.Conflict(
            f"{email} already has a pending invitation; revoke it to send a new one.",
            errors={"email": ["Already invited."]}))
        invitation.set_project_limit(projects)
        audit_record(principal=principal, action="invitation.create", target=invitation,
                     changes={"email": email, "role": role, "projects": [p.id for p in projects]})
        enqueue_on_commit("projects.tasks.invitation_send_email", invitation.id)
    return invitation


def invitation_revoke(*, principal: Principal, invitation: Invitation) -> Invitation:
    principal.require(Perm.MEMBERS_MANAGE)
    with transaction.atomic():
        invitation = lock_row(Invitation, invitation.pk, organization=principal.organization)
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
    invitation = selectors.invitation_get_by_token(token=token)
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
            raise field_invalid("password", "Required for an existing account.",
                                detail="An account with this email exists: log in first, or give its password.")
        # Before the transaction: a wrong password rolls it back, and the attempt's count must stay.
        try:
            login_authenticate(email=existing.email, password=password, ip=ip, method="password (invitation)",
                               user_agent=user_agent)
        except errors.NotAuthenticated as exc:
            raise errors.NotAuthenticated("The password is not correct.") from exc
        if selectors.two_factor_enabled(existing):
            # A password alone must not sign in an account that has a second factor: the invitee logs in
            # (password and code), then accepts with the session.
            raise errors.NotAuthenticated("This account uses two-factor login: log in first, then open the "
                                          "invitation again.")
        proven = True
    with transaction.atomic():
        invitation = lock_row(Invitation.objects.select_related("organization"), invitation.pk)
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
                raise field_invalid("password", "Required for a new account.",
                                    detail="Choose a password for your new account.")
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
