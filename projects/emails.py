"""Mail the tenancy app sends. Plain text plus HTML, through Django's mail framework."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

from projects.models import Invitation


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
