"""Mail the tenancy app sends. Plain text plus HTML, through Django's mail framework."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from projects.models import Invitation, SsoDomain, User


def invitation_accept_url(token: str) -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse("console:invitation-accept", args=[token])


def send_invitation_email(*, invitation: Invitation) -> None:
    context = {
        "invitation": invitation,
        "organization": invitation.organization,
        "inviter": invitation.invited_by.email if invitation.invited_by else "An administrator",
        "accept_url": invitation_accept_url(invitation.token_encrypted),
    }
    subject = f"You are invited to {invitation.organization.name} on mqcloud"
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("projects/email/invitation.txt", context),
        to=[invitation.email],
    )
    message.attach_alternative(render_to_string("projects/email/invitation.html", context), "text/html")
    message.send()


def password_reset_url(token: str) -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse("console:password-reset-confirm", args=[token])


def send_password_reset_email(*, user: User, token: str) -> None:
    context = {
        "user": user,
        "reset_url": password_reset_url(token),
        "valid_until": timezone.now() + timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT),
    }
    message = EmailMultiAlternatives(
        subject="Reset your mqcloud password",
        body=render_to_string("projects/email/password_reset.txt", context),
        to=[user.email],
        # Lets an outbox that shows mail to others recognise a link that takes over an account.
        headers={"X-Mqcloud-Mail": "password-reset"},
    )
    message.attach_alternative(render_to_string("projects/email/password_reset.html", context), "text/html")
    message.send()


def sso_domain_verify_url(token: str) -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse("console:sso-domain-verify", args=[token])


def send_sso_domain_email(*, sso_domain: SsoDomain) -> None:
    """To the admin mailbox of a domain an organization claims for SSO: the link proves the mailbox is read."""
    context = {"sso_domain": sso_domain, "organization": sso_domain.organization,
               "verify_url": sso_domain_verify_url(sso_domain.token_encrypted)}
    message = EmailMultiAlternatives(
        subject=f"Verify {sso_domain.domain} for single sign-on to {sso_domain.organization.name} on mqcloud",
        body=render_to_string("projects/email/sso_domain.txt", context),
        to=[sso_domain.verification_email],
    )
    message.send()
