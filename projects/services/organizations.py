"""Organizations: a new customer's signup, the organization's own settings, and the operators' flagship switch."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction

from controlplane import errors
from controlplane.db import lock_row
from projects.audit import audit_record
from projects.models import ApiKey, AuditEvent, Membership, Organization, Project, User
from projects.roles import Perm, Role
from projects.services.api_keys import api_key_create
from projects.services.projects import project_created_announce
from projects.services.validation import changes_apply, model_full_clean, password_validate
from projects.tenancy import Principal


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
    model_full_clean(organization)
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
        added = project_created_announce(project=project)
        audit_record(principal=principal, action="project.create", target=project,
                     changes={"name": project.name, **added})
        api_key, secret = (api_key_create(principal=principal, name="Default key", role=Role.OWNER)
                            if with_api_key else (None, None))
    return organization, user, api_key, secret


def organization_update(*, principal: Principal, name: str | None = None, country: str | None = None) -> Organization:
    principal.require(Perm.ORGANIZATION_MANAGE)
    with transaction.atomic():
        organization = lock_row(Organization, principal.organization.pk)
        updates = {k: v for k, v in {"name": name, "country": country.upper() if country else None}.items()
                   if v is not None}
        changes = changes_apply(organization, updates)
        if changes:
            model_full_clean(organization)
            organization.save()
            audit_record(principal=principal, action="organization.update", target=organization, changes=changes)
    return organization


def organization_set_flagship(*, principal: Principal, enabled: bool) -> Organization:
    """Flagship is an invite-only trial: only operators (staff principals) switch it."""
    if principal.actor_type != AuditEvent.ActorType.STAFF:
        raise errors.PermissionDenied("Only operators can enable the flagship tier.")
    with transaction.atomic():
        organization = lock_row(Organization, principal.organization.pk)
        if organization.flagship_enabled != enabled:
            organization.flagship_enabled = enabled
            organization.save(update_fields=["flagship_enabled"])
            audit_record(principal=principal, action="organization.flagship", target=organization,
                         changes={"flagship_enabled": [not enabled, enabled]})
    return organization
