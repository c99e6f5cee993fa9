"""API keys: minted for a member (or, by an owner, for the organization), revoked by their holders."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from controlplane import errors
from controlplane.db import lock_row
from controlplane.errors import field_invalid
from projects import selectors
from projects.audit import audit_record
from projects.authentication import generate_api_key_secret
from projects.models import ApiKey, Membership, Project
from projects.roles import Perm
from projects.services.grants import grant_check, grant_limit_of
from projects.services.validation import model_full_clean
from projects.tenancy import Principal


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
    grant_check(principal, role, grant_limit_of(projects))
    if expires_at is not None and expires_at <= timezone.now():
        raise field_invalid("expires_at", "Must be in the future.", detail="expires_at must be in the future.")
    full, prefix, secret_hash = generate_api_key_secret()
    api_key = ApiKey(organization=principal.organization, name=name, role=role, prefix=prefix,
                     secret_hash=secret_hash, created_by=creator, service=service, expires_at=expires_at)
    model_full_clean(api_key)
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
        api_key = lock_row(ApiKey, api_key.pk, organization=principal.organization)
        if not principal.has(Perm.API_KEYS_MANAGE_ALL):
            # Developers revoke their own keys only; the selector, which hides the others, says which.
            if not selectors.api_key_list(principal=principal).filter(pk=api_key.pk).exists():
                raise errors.NotFound(f"No API key {api_key.pk}.")
        grant_check(principal, api_key.role, api_key.project_limit())
        if api_key.revoked_at is None:
            api_key_mark_revoked(principal=principal, api_key=api_key)
    return api_key


def api_key_mark_revoked(*, principal: Principal, api_key: ApiKey, reason: str = "",
                         creator: Membership | None = None) -> None:
    """Revokes a key already locked and checked by the caller (``api_key_revoke``, or ``member_remove`` for
    the keys of the member who goes), in the caller's transaction."""
    api_key.revoked_at = timezone.now()
    api_key.save(update_fields=["revoked_at"])
    changes: dict[str, Any] = {"name": api_key.name}
    if reason:
        changes |= {"reason": reason, "creator": creator.pk if creator is not None else None}
    audit_record(principal=principal, action="api_key.revoke", target=api_key, changes=changes)
