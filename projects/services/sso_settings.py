"""An organization's SSO settings (issue 17): its OpenID Provider, the email domains it proves it holds, and
unlinking. Owners and admins (``Perm.ORGANIZATION_MANAGE``); every change audited, the client secret never.

A domain is proven one of two ways: a mail with a one-time link to an admin mailbox on the domain (``admin@``,
``hostmaster@``... the mailboxes CAs accept for the same proof), or a DNS TXT record
``mqcloud-verification=<token>`` on the domain, read through a resolver the caller may pass (tests give their own;
nothing here queries DNS unasked).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

import dns.resolver
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from controlplane import errors
from controlplane.errors import field_invalid
from controlplane.queue import enqueue_on_commit
from projects import selectors
from projects.audit import audit_record
from projects.models import ConsoleSession, Membership, Project, SsoConnection, SsoDomain
from projects.roles import Perm, Role, role_can_grant
from projects.services.sessions import console_sessions_end_all
from projects.tenancy import Principal

ADMIN_MAILBOXES = ("admin", "administrator", "hostmaster", "postmaster", "webmaster")
TXT_PREFIX = "mqcloud-verification="
_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _issuer_check(issuer: str) -> str:
    issuer = issuer.strip()
    parts = urlsplit(issuer)
    loopback = parts.hostname in ("localhost",) or _is_loopback(parts.hostname or "")
    # Plain http only on this machine (the local IdP of `make run` and the tests): anywhere else the token
    # exchange would carry the client secret in clear.
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise field_invalid("issuer", "The issuer must be an https URL (http only on loopback).")
    if parts.query or parts.fragment:
        raise field_invalid("issuer", "The issuer has no query or fragment.")
    return issuer


def _is_loopback(host: str) -> bool:
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _role_check(principal: Principal, field: str, role: str) -> None:
    if role not in Role.values or role == Role.OWNER:
        raise field_invalid(field, "One of admin, developer, billing, viewer (ownership is never handed out by "
                                   "an IdP group).")
    if not role_can_grant(principal.role, role):
        raise field_invalid(field, f"Your role ({principal.role}) cannot hand out {role}.")


def _mappings_check(principal: Principal, mappings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    checked = []
    for index, mapping in enumerate(mappings):
        group = str(mapping.get("group") or "").strip()
        if not group:
            raise field_invalid("group_mappings", f"Mapping {index + 1} names no group.")
        role = str(mapping.get("role") or "")
        _role_check(principal, "group_mappings", role)
        project_ids = [str(p) for p in mapping.get("projects") or []]
        known = set(Project.objects.filter(organization=principal.organization, pk__in=project_ids)
                    .values_list("pk", flat=True))
        if unknown := [p for p in project_ids if p not in known]:
            raise field_invalid("group_mappings", f"Mapping {index + 1}: no project {', '.join(unknown)}.")
        checked.append({"group": group, "role": role, "projects": project_ids})
    return checked


def sso_configure(*, principal: Principal, issuer: str, client_id: str, client_secret: str | None = None,
                  groups_claim: str = "groups", default_role: str = Role.VIEWER,
                  group_mappings: list[dict[str, Any]] | None = None, require_sso: bool = False,
                  break_glass_member_ids: list[str] | None = None) -> SsoConnection:
    """Sets the organization's IdP (a PUT: every field as given). ``client_secret`` None keeps the stored one."""
    principal.require(Perm.ORGANIZATION_MANAGE)
    issuer = _issuer_check(issuer)
    if not client_id.strip():
        raise field_invalid("client_id", "The client id the IdP gave mqcloud.")
    _role_check(principal, "default_role", default_role)
    mappings = _mappings_check(principal, group_mappings or [])
    with transaction.atomic():
        connection = SsoConnection.objects.select_for_update().filter(organization=principal.organization).first()
        if connection is None and not client_secret:
            raise field_invalid("client_secret", "The client secret the IdP gave mqcloud.")
        if require_sso and not SsoDomain.objects.filter(organization=principal.organization,
                                                        verified_at__isnull=False).exists():
            raise field_invalid("require_sso", "Verify a domain first: SSO is required for a verified domain's "
                                               "people.")
        created = connection is None
        connection = connection or SsoConnection(organization=principal.organization)
        connection.issuer, connection.client_id = issuer, client_id.strip()
        if client_secret:
            connection.client_secret = client_secret
        connection.groups_claim = groups_claim.strip() or "groups"
        connection.default_role, connection.group_mappings, connection.require_sso = default_role, mappings, require_sso
        connection.save()
        if break_glass_member_ids is not None:
            _break_glass_set(principal, break_glass_member_ids)
        audit_record(principal=principal, action="sso.create" if created else "sso.update", target=connection,
                     changes={"issuer": issuer, "client_id": connection.client_id,
                              "client_secret_changed": bool(client_secret), "groups_claim": connection.groups_claim,
                              "default_role": default_role, "group_mappings": mappings, "require_sso": require_sso,
                              "break_glass_member_ids": break_glass_member_ids})
    return connection


def _break_glass_set(principal: Principal, member_ids: list[str]) -> None:
    members = Membership.objects.filter(organization=principal.organization)
    owners = set(members.filter(role=Role.OWNER, pk__in=member_ids).values_list("pk", flat=True))
    if unknown := [m for m in member_ids if m not in owners]:
        raise field_invalid("break_glass_member_ids", f"Only owners can be break-glass: {', '.join(unknown)}.")
    members.filter(pk__in=owners).update(sso_break_glass=True)
    members.exclude(pk__in=owners).filter(sso_break_glass=True).update(sso_break_glass=False)


def sso_unlink(*, principal: Principal, keep_session_id: str | None) -> int:
    """Removes the organization's IdP and ends every console session of the people of its verified domains
    (they logged in through it); returns how many ended. The domains stay verified."""
    principal.require(Perm.ORGANIZATION_MANAGE)
    with transaction.atomic():
        connection = SsoConnection.objects.select_for_update().filter(organization=principal.organization).first()
        if connection is None:
            raise errors.NotFound("This organization has no SSO set up.")
        domains = list(selectors.sso_domain_list(principal=principal).filter(verified_at__isnull=False)
                       .values_list("domain", flat=True))
        people = [m.user for m in Membership.objects.filter(organization=principal.organization)
                  .select_related("user") if selectors.email_domain(m.user.email) in domains]
        ended = 0
        for user in people:
            if ConsoleSession.objects.filter(user=user).exclude(pk=keep_session_id or "").exists():
                ended += console_sessions_end_all(user=user, keep_session_id=keep_session_id,
                                                  reason="SSO unlinked", ip=principal.ip,
                                                  user_agent=principal.user_agent)
        audit_record(principal=principal, action="sso.delete", target=connection,
                     changes={"issuer": connection.issuer, "sessions_ended": ended})
        connection.delete()
    return ended


# --- domains --------------------------------------------------------------------------------------------
def sso_domain_add(*, principal: Principal, domain: str, mailbox: str | None = "admin") -> SsoDomain:
    """Claims ``domain``; with ``mailbox`` a verification mail goes to ``mailbox@domain`` (else: DNS TXT only)."""
    principal.require(Perm.ORGANIZATION_MANAGE)
    domain = domain.strip().lower().rstrip(".")
    if not _DOMAIN_RE.match(domain):
        raise field_invalid("domain", "A domain name such as example.com.")
    if mailbox is not None and mailbox not in ADMIN_MAILBOXES:
        raise field_invalid("mailbox", f"One of {', '.join(ADMIN_MAILBOXES)}.")
    if SsoDomain.objects.filter(domain=domain, verified_at__isnull=False).exclude(
            organization=principal.organization).exists():
        raise errors.Conflict(f"{domain} is verified by another organization.")
    token = secrets.token_urlsafe(24)
    try:
        with transaction.atomic():
            sso_domain = SsoDomain.objects.create(
                organization=principal.organization, domain=domain, token_hash=token_hash(token),
                token_encrypted=token, verification_email=f"{mailbox}@{domain}" if mailbox else "")
            audit_record(principal=principal, action="sso_domain.create", target=sso_domain,
                         changes={"domain": domain, "verification_email": sso_domain.verification_email})
            if mailbox:
                enqueue_on_commit("projects.tasks.sso_domain_send_email", sso_domain.pk)
    except IntegrityError as exc:
        raise errors.Conflict(f"{domain} is already claimed by this organization.") from exc
    return sso_domain


def txt_record_value(sso_domain: SsoDomain) -> str:
    return f"{TXT_PREFIX}{sso_domain.token_encrypted}"


def _verify(sso_domain: SsoDomain, *, by: str) -> SsoDomain:
    if sso_domain.verified_at is not None:
        return sso_domain
    sso_domain.verified_at, sso_domain.verified_by = timezone.now(), by
    try:
        with transaction.atomic():
            sso_domain.save(update_fields=["verified_at", "verified_by"])
    except IntegrityError as exc:
        raise errors.Conflict(f"{sso_domain.domain} is verified by another organization.") from exc
    return sso_domain


def sso_domain_confirm(*, token: str, ip: str | None, user_agent: str = "") -> SsoDomain:
    """The link of the verification mail: whoever reads the domain's admin mailbox vouches for it."""
    sso_domain = SsoDomain.objects.select_related("organization").filter(token_hash=token_hash(token)).first()
    if sso_domain is None or not sso_domain.verification_email:
        raise errors.NotFound("This verification link is not valid (the domain was removed, or the link is wrong).")
    with transaction.atomic():
        already = sso_domain.verified_at is not None
        _verify(sso_domain, by="email")
        if not already:
            principal = Principal(organization=sso_domain.organization, role=Role.VIEWER, project_ids=None, ip=ip,
                                  user_agent=user_agent)
            audit_record(principal=principal, action="sso_domain.verify", target=sso_domain,
                         actor_label=sso_domain.verification_email,
                         changes={"domain": sso_domain.domain, "by": "email"})
    return sso_domain


def _default_resolve_txt(name: str) -> list[str]:
    resolver = dns.resolver.Resolver(configure=not settings.SSO_DNS_NAMESERVERS)
    if settings.SSO_DNS_NAMESERVERS:
        resolver.nameservers = list(settings.SSO_DNS_NAMESERVERS)
    try:
        answer = resolver.resolve(name, "TXT", lifetime=5)
    except Exception:  # NXDOMAIN, no answer, timeout: no record to be found
        return []
    return [b"".join(record.strings).decode(errors="replace") for record in answer]


def sso_domain_check_dns(*, principal: Principal, sso_domain: SsoDomain,
                         resolve_txt: Callable[[str], list[str]] | None = None) -> SsoDomain:
    """Looks for the TXT record on the domain; verifies it when found, refuses (400) otherwise."""
    principal.require(Perm.ORGANIZATION_MANAGE)
    if sso_domain.verified_at is not None:
        return sso_domain
    records = (resolve_txt or _default_resolve_txt)(sso_domain.domain)
    if txt_record_value(sso_domain) not in [record.strip() for record in records]:
        raise errors.ValidationFailed(f"No TXT record {txt_record_value(sso_domain)} on {sso_domain.domain} yet "
                                      f"(DNS changes can take a while to show).")
    with transaction.atomic():
        _verify(sso_domain, by="dns")
        audit_record(principal=principal, action="sso_domain.verify", target=sso_domain,
                     changes={"domain": sso_domain.domain, "by": "dns"})
    return sso_domain


def sso_domain_remove(*, principal: Principal, sso_domain: SsoDomain) -> None:
    principal.require(Perm.ORGANIZATION_MANAGE)
    with transaction.atomic():
        audit_record(principal=principal, action="sso_domain.delete", target=sso_domain,
                     changes={"domain": sso_domain.domain})
        sso_domain.delete()
