"""Thin, idempotent jobs: take ids, load, return early when there is nothing to do, call a service."""

from __future__ import annotations

import logging
import smtplib

from celery import shared_task

from projects.accounts import password_reset_token
from projects.emails import send_invitation_email, send_password_reset_email, send_sso_domain_email
from projects.models import Invitation, SsoDomain, User
from projects.services import invitations, sessions

logger = logging.getLogger(__name__)

# Transient mail failures: the server refused for now or could not be reached.
_TRANSIENT_MAIL_ERRORS = (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, smtplib.SMTPResponseException,
                          ConnectionError, TimeoutError, OSError)


@shared_task(name="projects.tasks.invitation_send_email", bind=True, acks_late=True,
             autoretry_for=_TRANSIENT_MAIL_ERRORS, retry_backoff=5, retry_backoff_max=600, max_retries=8)
def invitation_send_email(self, invitation_id: str) -> str:
    invitation = Invitation.objects.select_related("organization", "invited_by").filter(pk=invitation_id).first()
    if invitation is None:
        return "gone"
    if invitation.status != Invitation.Status.PENDING:
        return f"skipped: {invitation.status}"
    if invitation.email_sent_at is not None:
        # Already sent (a redelivered task after a worker crash): do not mail twice.
        return "already sent"
    send_invitation_email(invitation=invitation)
    invitations.invitation_mark_sent(invitation_id=invitation.id)
    return "sent"


@shared_task(name="projects.tasks.console_sessions_purge")
def console_sessions_purge() -> int:
    return sessions.console_sessions_purge()


@shared_task(name="projects.tasks.invitations_expire")
def invitations_expire() -> int:
    return invitations.invitations_expire()


@shared_task(name="projects.tasks.password_reset_send_email", bind=True, acks_late=True,
             autoretry_for=_TRANSIENT_MAIL_ERRORS, retry_backoff=5, retry_backoff_max=600, max_retries=8)
def password_reset_send_email(self, email: str) -> str:
    # The account is looked up here, not in the request: the caller's answer and timing are the same for
    # known and unknown addresses.
    user = User.objects.filter(email=email, is_active=True).first()
    if user is None:
        return "no account"
    send_password_reset_email(user=user, token=password_reset_token(user=user))
    return "sent"


@shared_task(name="projects.tasks.sso_domain_send_email", bind=True, acks_late=True,
             autoretry_for=_TRANSIENT_MAIL_ERRORS, retry_backoff=5, retry_backoff_max=600, max_retries=8)
def sso_domain_send_email(self, sso_domain_id: str) -> str:
    sso_domain = SsoDomain.objects.select_related("organization").filter(pk=sso_domain_id).first()
    if sso_domain is None:
        return "gone"
    if sso_domain.verified_at is not None or not sso_domain.verification_email:
        return "skipped"
    send_sso_domain_email(sso_domain=sso_domain)
    return "sent"
