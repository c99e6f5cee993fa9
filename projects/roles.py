"""Roles and what each may do. The one table every permission check reads."""

from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    DEVELOPER = "developer", "Developer"
    BILLING = "billing", "Billing"
    VIEWER = "viewer", "Viewer"


#: What each role may do, in one line, for the people choosing one (the table below is what is enforced).
ROLE_DESCRIPTIONS: dict[str, str] = {
    Role.OWNER: "Everything, including members, billing and handing over ownership.",
    Role.ADMIN: "Everything an owner can do except handing over ownership.",
    Role.DEVELOPER: "Projects, deployments and their own API keys; no members or billing.",
    Role.BILLING: "Billing details, invoices and budgets only.",
    Role.VIEWER: "Reads everything, changes nothing.",
}


class Perm:
    """Capabilities. Reading the organization's projects and deployments is open to every role."""

    READ = "read"
    PROJECTS_WRITE = "projects.write"
    DEPLOYMENTS_WRITE = "deployments.write"
    MEMBERS_MANAGE = "members.manage"
    API_KEYS_MANAGE = "api_keys.manage"
    # Everyone with API_KEYS_MANAGE manages their own keys; these see and revoke everybody's.
    API_KEYS_MANAGE_ALL = "api_keys.manage_all"
    # Organization service keys have no creator and outlive their maker: owners only.
    API_KEYS_SERVICE = "api_keys.service"
    AUDIT_READ = "audit.read"
    BILLING_READ = "billing.read"
    BILLING_MANAGE = "billing.manage"
    ORGANIZATION_MANAGE = "organization.manage"
    OWNERSHIP_TRANSFER = "ownership.transfer"


_ADMIN = frozenset(
    {
        Perm.READ,
        Perm.PROJECTS_WRITE,
        Perm.DEPLOYMENTS_WRITE,
        Perm.MEMBERS_MANAGE,
        Perm.API_KEYS_MANAGE,
        Perm.API_KEYS_MANAGE_ALL,
        Perm.AUDIT_READ,
        Perm.BILLING_READ,
        Perm.BILLING_MANAGE,
        Perm.ORGANIZATION_MANAGE,
    }
)

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.OWNER: _ADMIN | {Perm.OWNERSHIP_TRANSFER, Perm.API_KEYS_SERVICE},
    Role.ADMIN: _ADMIN,
    Role.DEVELOPER: frozenset({Perm.READ, Perm.PROJECTS_WRITE, Perm.DEPLOYMENTS_WRITE, Perm.API_KEYS_MANAGE}),
    Role.BILLING: frozenset({Perm.READ, Perm.BILLING_READ, Perm.BILLING_MANAGE}),
    Role.VIEWER: frozenset({Perm.READ}),
}


def role_has(role: str, perm: str) -> bool:
    return perm in ROLE_PERMISSIONS.get(role, frozenset())


def role_can_grant(granter_role: str, granted_role: str) -> bool:
    """Nobody hands out more than they hold: the granted role's capabilities must be a subset."""
    return ROLE_PERMISSIONS[granted_role] <= ROLE_PERMISSIONS[granter_role]


def lesser_role(a: str, b: str) -> str:
    """The role with what both allow (an API key under its creator's current role). Roles are not a
    chain (developer and billing each hold something the other lacks), so this is the role with the most
    capabilities inside both; viewer, reading only, is always one."""
    both = ROLE_PERMISSIONS[a] & ROLE_PERMISSIONS[b]
    inside = [role for role in Role if ROLE_PERMISSIONS[role] <= both]
    return max(inside, key=lambda role: len(ROLE_PERMISSIONS[role]))


#: Strongest first: the role a person provisioned by SCIM gets from several groups is the first of theirs in
#: this order (developer ranks above billing: it changes more of what runs, though neither holds the other).
#: The roles an identity provider's group may grant (SSO group mappings, the default role): never owner.
GRANTABLE_ROLES: tuple[str, ...] = (Role.ADMIN, Role.DEVELOPER, Role.BILLING, Role.VIEWER)

ROLE_STRENGTH: tuple[str, ...] = (Role.OWNER, Role.ADMIN, Role.DEVELOPER, Role.BILLING, Role.VIEWER)


def strongest_role(roles: list[str]) -> str | None:
    ranked = [role for role in ROLE_STRENGTH if role in roles]
    return ranked[0] if ranked else None
