"""The tenancy/permission layer: who is acting, for which organization, with which rights.

Every API view, console view and admin write builds a :class:`Principal` here and passes it to
selectors and services, which scope every query by ``principal.organization`` and, for sub-accounts,
by ``principal.project_ids``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Q, QuerySet

from controlplane import errors
from projects.allowlist import allowlist_permits
from projects.models import ApiKey, AuditEvent, Membership, Organization, ProjectLimited, User
from projects.roles import Role, lesser_role, role_has


@dataclass(frozen=True)
class Principal:
    organization: Organization
    role: str
    # None: every project of the organization; otherwise only these (a sub-account or limited key).
    project_ids: frozenset[str] | None
    user: User | None = None
    api_key: ApiKey | None = None
    membership: Membership | None = None
    # The member whose rights bound this principal: its own membership for a session, the creator's for
    # an API key; None for an organization service key, an operator and the system.
    acting_member: Membership | None = None
    actor_type: str = AuditEvent.ActorType.USER
    ip: str | None = None
    user_agent: str = ""
    extra: dict = field(default_factory=dict)

    # --- identity for the audit log -------------------------------------------------------------
    @property
    def actor_id(self) -> str:
        if "actor_id" in self.extra:  # a credential that is neither a person nor an API key (SCIM token)
            return self.extra["actor_id"]
        if self.api_key is not None:
            return self.api_key.id
        if self.user is not None:
            return self.user.id
        return ""

    @property
    def actor_label(self) -> str:
        if "actor_label" in self.extra:
            return self.extra["actor_label"]
        if self.api_key is not None:
            return f"API key {self.api_key.name} (mqc_{self.api_key.prefix})"
        if self.user is not None:
            return self.user.email
        return "system"

    # --- checks ---------------------------------------------------------------------------------
    def has(self, perm: str) -> bool:
        return role_has(self.role, perm)

    def require(self, perm: str) -> None:
        if not self.has(perm):
            raise errors.PermissionDenied(f"Your role ({self.role}) does not allow this action.")

    @property
    def is_project_limited(self) -> bool:
        """Limited to some projects. With none left it sees none: an empty limit is not "everything"."""
        return self.project_ids is not None

    def can_see_project(self, project_id: str) -> bool:
        return self.project_ids is None or project_id in self.project_ids

    def limit_to_projects(self, queryset: QuerySet, field_name: str = "project_id") -> QuerySet:
        if self.project_ids is None:
            return queryset
        return queryset.filter(**{f"{field_name}__in": self.project_ids})

    def sees_grants_q(self) -> Q:
        """Grants (members, invitations, keys) a limited principal may see: unlimited ones, or ones sharing
        one of its projects; a grant limited only to projects it cannot see would reveal them."""
        return ProjectLimited.seeing_projects_q(self.project_ids or ())

    # --- constructors ---------------------------------------------------------------------------
    @classmethod
    def for_membership(cls, membership: Membership, *, ip: str | None = None, user_agent: str = "") -> Principal:
        return cls(
            organization=membership.organization,
            role=membership.role,
            project_ids=membership.project_limit(),
            user=membership.user,
            membership=membership,
            acting_member=membership,
            actor_type=AuditEvent.ActorType.USER,
            ip=ip,
            user_agent=user_agent,
        )

    @classmethod
    def for_api_key(cls, api_key: ApiKey, *, ip: str | None = None, user_agent: str = "") -> Principal:
        """A key acts with the lesser of its role and its creator's current role, within both their project
        limits; a service key with its own. (A key whose creator is gone never authenticates.)"""
        creator = api_key.created_by if not api_key.service else None
        role, project_ids = api_key.role, api_key.project_limit()
        if creator is not None:
            role = lesser_role(role, creator.role)
            project_ids = intersect_limits(project_ids, creator.project_limit())
        return cls(
            organization=api_key.organization,
            role=role,
            project_ids=project_ids,
            api_key=api_key,
            acting_member=creator,
            actor_type=AuditEvent.ActorType.API_KEY,
            ip=ip,
            user_agent=user_agent,
        )

    @classmethod
    def for_system(cls, organization: Organization) -> Principal:
        return cls(organization=organization, role=Role.OWNER, project_ids=None,
                   actor_type=AuditEvent.ActorType.SYSTEM)

    @classmethod
    def for_staff(cls, user: User, organization: Organization | None, *, ip: str | None = None,
                  user_agent: str = "") -> Principal:
        """An operator acting from the ops site; ``organization`` is None for platform-wide records."""
        return cls(organization=organization, role=Role.OWNER, project_ids=None, user=user,  # type: ignore[arg-type]
                   actor_type=AuditEvent.ActorType.STAFF, ip=ip, user_agent=user_agent)


def intersect_limits(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    """Two project limits at once (None: unlimited)."""
    if a is None:
        return b
    if b is None:
        return a
    return a & b


def memberships_of(user: User) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("organization").order_by("created_at", "id")


def principal_for_user(user: User, organization_id: str | None, *, ip: str | None = None,
                       user_agent: str = "") -> Principal:
    """The user's principal in the chosen organization (default: the first they joined).

    An organization the user does not belong to is reported as not found, never as forbidden, so its
    existence is not revealed.
    """
    memberships = memberships_of(user)
    if organization_id:
        # Whatever the header holds, it is compared, never trusted: a value that cannot be an id (too
        # long, a NUL byte the database would refuse) is just an organization that does not exist.
        is_id = len(organization_id) <= 32 and organization_id.isascii() and organization_id.isprintable()
        membership = memberships.filter(organization_id=organization_id).first() if is_id else None
        if membership is None:
            raise errors.NotFound("No such organization.")
    else:
        membership = memberships.first()
        if membership is None:
            raise errors.PermissionDenied("You are not a member of any organization.")
    return Principal.for_membership(membership, ip=ip, user_agent=user_agent)


def principal_allowed_from_address(user: User, *, ip: str | None, user_agent: str = "",
                                   excluding: str) -> Principal | None:
    """The user's principal in the first organization they joined, other than ``excluding``, whose IP allowlist
    lets ``ip`` in; None when there is none."""
    for membership in memberships_of(user).exclude(organization_id=excluding):
        if allowlist_permits(membership.organization.ip_allowlist, ip):
            return Principal.for_membership(membership, ip=ip, user_agent=user_agent)
    return None


def client_ip(request) -> str | None:
    """The caller's address; behind ``NUM_PROXIES`` trusted proxies, from X-Forwarded-For."""
    from django.conf import settings

    num_proxies = settings.REST_FRAMEWORK.get("NUM_PROXIES") or 0
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if num_proxies and forwarded:
        addresses = [a.strip() for a in forwarded.split(",") if a.strip()]
        if addresses:
            candidate = _without_port(addresses[-min(num_proxies, len(addresses))])
            # With fewer hops than proxies the entry is the client's own text; it is stored in inet
            # columns, so only a real address counts. Anything else is no address at all, never the proxy's
            # own (REMOTE_ADDR), which would make every client behind it one and the same.
            return candidate if _is_ip(candidate) else None
    return request.META.get("REMOTE_ADDR") or None


def _without_port(entry: str) -> str:
    """``203.0.113.5:51234`` → ``203.0.113.5`` and ``[2001:db8::7]:443`` → ``2001:db8::7``, as some proxies
    write them; a bare IPv6 address (colons, no brackets) is left alone."""
    if entry.startswith("["):
        return entry[1:entry.find("]")] if "]" in entry else entry
    host, colon, port = entry.rpartition(":")
    return host if colon and port.isdigit() and host.count(":") == 0 else entry


def _is_ip(value: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
