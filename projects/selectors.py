"""Every read of tenancy data. Organization (via the principal) first; never a bare ``.get(id=)``."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import Count, Min, Prefetch, Q, QuerySet
from django.urls import Resolver404, resolve
from django.utils import timezone

from controlplane import errors
from controlplane.mail import OutboxMessage, links_in, mask_link_secrets, outbox_messages
from projects.authentication import invitation_token_hash
from projects.models import (
    ApiKey,
    AuditEvent,
    ConsoleSession,
    Invitation,
    Membership,
    Organization,
    Project,
    RecoveryCode,
    ScimGroup,
    ScimToken,
    ScimUser,
    SsoConnection,
    SsoDomain,
    TwoFactorDevice,
    User,
)
from projects.roles import Perm, role_can_grant
from projects.tenancy import Principal


# --- projects ---------------------------------------------------------------------------------------
def project_list(*, principal: Principal) -> QuerySet[Project]:
    qs = Project.objects.filter(organization_id=principal.organization.pk)  # by id: see OrganizationScopedViewSet
    return principal.limit_to_projects(qs, "id")


def project_get(*, principal: Principal, project_id: str) -> Project:
    project = project_list(principal=principal).filter(id=project_id).first()
    if project is None:
        raise errors.NotFound(f"No project {project_id}.")
    return project


def projects_by_ids(*, principal: Principal, project_ids: list[str], field: str = "projects") -> list[Project]:
    """Resolve ids given in a request; an id the principal cannot see is reported as unknown."""
    wanted = list(dict.fromkeys(project_ids))
    found = {p.id: p for p in project_list(principal=principal).filter(id__in=wanted)}
    missing = [pid for pid in wanted if pid not in found]
    if missing:
        raise errors.ValidationFailed("Unknown project ids.", errors={field: [f"No project {pid}." for pid in missing]})
    return [found[pid] for pid in wanted]


# --- members ----------------------------------------------------------------------------------------
def member_list(*, principal: Principal) -> QuerySet[Membership]:
    qs = (
        Membership.objects.filter(organization=principal.organization)
        .select_related("user")
        .prefetch_related(Prefetch("projects", queryset=Project.objects.only("id")))
    )
    own = principal.membership.pk if principal.membership is not None else None
    # Your own membership is always yours to see (and leave), even limited to projects since deleted.
    return _shared_with(principal, qs, also=Q(pk=own) if own else None)


def _shared_with(principal: Principal, qs: QuerySet, also: Q | None = None) -> QuerySet:
    """For a sub-account: grants that are unlimited or share one of its projects (``Principal.sees_grants_q``).

    Rows limited only to projects the principal cannot see would reveal those projects, so they are
    left out, exactly like the projects themselves.
    """
    if not principal.is_project_limited:
        return qs
    visible_q = principal.sees_grants_q()
    if also is not None:
        visible_q |= also
    visible = qs.model.objects.filter(visible_q)
    return qs.filter(pk__in=visible.values("pk"))


def member_get(*, principal: Principal, member_id: str) -> Membership:
    member = member_list(principal=principal).filter(id=member_id).first()
    if member is None:
        raise errors.NotFound(f"No member {member_id}.")
    return member


# --- invitations ------------------------------------------------------------------------------------
def invitation_list(*, principal: Principal) -> QuerySet[Invitation]:
    principal.require(Perm.MEMBERS_MANAGE)
    qs = Invitation.objects.filter(organization=principal.organization).prefetch_related("projects")
    return _shared_with(principal, qs)


def invitation_get(*, principal: Principal, invitation_id: str) -> Invitation:
    invitation = invitation_list(principal=principal).filter(id=invitation_id).first()
    if invitation is None:
        raise errors.NotFound(f"No invitation {invitation_id}.")
    return invitation


def invitation_get_by_token(*, token: str) -> Invitation:
    """The one read not scoped by organization: the token itself is the credential."""
    invitation = (
        Invitation.objects.select_related("organization").filter(token_hash=invitation_token_hash(token)).first()
    )
    if invitation is None:
        raise errors.NotFound("This invitation link is not valid.")
    return invitation


# --- the embedded default's outbox ------------------------------------------------------------------
def outbox_list(*, principal: Principal, limit: int = 50) -> list[OutboxMessage]:
    """The mail a member may read: to the organization's people, with other people's one-time links masked.

    Listed: mail to a current member (a member of two organizations is seen from both), and the
    organization's own invitations to an invitee; not an invited address's other mail, or inviting any
    address would open its mailbox. Links stay masked (password resets always) except an invitation of
    this organization the reader could have sent (owner/admin, not limited to projects, the invited role
    within theirs: an admin holding an owner's link could become the owner) or one addressed to the reader.
    Operators read everything, unmasked, on the ops site.
    """
    organization = principal.organization
    members = {email.lower() for email in
               Membership.objects.filter(organization=organization).values_list("user__email", flat=True)}
    invitees = {email.lower() for email in
                Invitation.objects.filter(organization=organization).values_list("email", flat=True)} - members
    reader = principal.user.email.lower() if principal.user is not None else None
    linked: dict[str, Invitation | None] = {}

    def invitation_of(url: str) -> Invitation | None:
        if url not in linked:
            linked[url] = _invitation_of_link(url)
        return linked[url]

    def include(message: OutboxMessage) -> bool:
        addressed = set(message.recipients)
        if addressed & members:
            return True
        if not addressed & invitees:
            return False
        return any((invitation := invitation_of(url)) is not None and invitation.organization_id == organization.pk
                   and invitation.email.lower() in addressed for url in links_in(message.text))

    def reveal(url: str) -> bool:
        invitation = invitation_of(url)
        if invitation is None:
            return False
        if reader is not None and invitation.email.lower() == reader:
            return True
        return (invitation.organization_id == organization.pk and principal.has(Perm.MEMBERS_MANAGE)
                and not principal.is_project_limited and role_can_grant(principal.role, invitation.role))

    shown = []
    for message in outbox_messages(limit, include=include):
        ours = tuple(address for address in message.recipients if address in members or address in invitees)
        others = len(message.recipients) - len(ours)
        to = ", ".join(ours) + (f" and {others} other{'s' if others > 1 else ''}" if others else "")
        shown.append(replace(message, to=to, recipients=ours, text=mask_link_secrets(message.text, reveal=reveal)))
    return shown


def _invitation_of_link(url: str) -> Invitation | None:
    """The invitation an accept link carries, whichever organization it is of (None for any other link)."""
    try:
        match = resolve(urlsplit(url).path)
    except (Resolver404, ValueError):
        return None
    if match.view_name != "console:invitation-accept":
        return None
    return Invitation.objects.filter(token_hash=invitation_token_hash(match.kwargs["token"])).first()


# --- api keys ---------------------------------------------------------------------------------------
def api_key_list(*, principal: Principal) -> QuerySet[ApiKey]:
    """Owners and admins see every key; everyone else with keys sees their own only (a key of a member:
    its creator's keys), never others' keys with their last-used address."""
    principal.require(Perm.API_KEYS_MANAGE)
    qs = (ApiKey.objects.filter(organization=principal.organization)
          .select_related("created_by__user").prefetch_related("projects"))
    if not principal.has(Perm.API_KEYS_MANAGE_ALL):
        if principal.acting_member is not None:
            qs = qs.filter(created_by=principal.acting_member)
        else:
            qs = qs.filter(pk=principal.api_key.pk if principal.api_key is not None else None)
    return _shared_with(principal, qs)


def api_key_get(*, principal: Principal, api_key_id: str) -> ApiKey:
    api_key = api_key_list(principal=principal).filter(id=api_key_id).first()
    if api_key is None:
        raise errors.NotFound(f"No API key {api_key_id}.")
    return api_key


# --- audit ------------------------------------------------------------------------------------------
def audit_event_list(*, principal: Principal) -> QuerySet[AuditEvent]:
    """The organization's audit trail; narrow it with ``projects.filters.AuditEventFilter``."""
    principal.require(Perm.AUDIT_READ)
    qs = AuditEvent.objects.filter(organization=principal.organization)
    if principal.is_project_limited:
        # A sub-account reads what it did itself and what was done to objects it can see; the rest
        # would name projects (and people, keys) outside its limits.
        org = principal.organization
        visible = (
            Q(actor_id=principal.actor_id)
            | Q(target_id__in=principal.project_ids)
            | Q(target_id__in=_shared_with(principal, Membership.objects.filter(organization=org)).values("pk"))
            | Q(target_id__in=_shared_with(principal, Invitation.objects.filter(organization=org)).values("pk"))
            | Q(target_id__in=_shared_with(principal, ApiKey.objects.filter(organization=org)).values("pk"))
        )
        qs = qs.filter(visible)
    return qs


# --- accounts ---------------------------------------------------------------------------------------
# --- two-factor ------------------------------------------------------------------------------------
def two_factor_enabled(user: User) -> bool:
    """Whether the person has a confirmed authenticator, so a login asks for a code after the password."""
    return TwoFactorDevice.objects.filter(user=user, confirmed_at__isnull=False).exists()


def user_get_active(*, user_id: str) -> User | None:
    """An active person by id, or None (gone or deactivated since the id was noted)."""
    return User.objects.filter(pk=user_id, is_active=True).first()


def two_factor_device_for(*, user: User) -> TwoFactorDevice | None:
    """The person's authenticator, confirmed or still being set up; None without one."""
    return TwoFactorDevice.objects.filter(user=user).first()


def recovery_codes_left(*, user: User) -> int:
    return RecoveryCode.objects.filter(user=user, used_at__isnull=True).count()


# --- console sessions --------------------------------------------------------------------------------
def session_timeouts_for(*, user_id: str) -> tuple[int | None, int | None]:
    """(idle, absolute) timeouts in seconds of a person's console sessions, None where no organization sets one.
    One session serves all of a person's organizations, so the strictest (shortest) of them applies."""
    found = Organization.objects.filter(memberships__user_id=user_id).aggregate(
        idle=Min("session_idle_timeout_minutes"), absolute=Min("session_absolute_timeout_minutes"))
    return (found["idle"] * 60 if found["idle"] else None, found["absolute"] * 60 if found["absolute"] else None)


def console_session_list(*, principal: Principal) -> QuerySet[ConsoleSession]:
    """The principal's own live console sessions, most recently used first; none for an API key (no person).

    A session abandoned past its timeout (or Django's session lifetime) ends at its next request; until then it
    is alive in the store but can never be used again, so it is not listed."""
    if principal.user is None:
        return ConsoleSession.objects.none()
    now = timezone.now()
    idle, absolute = session_timeouts_for(user_id=principal.user.pk)
    qs = ConsoleSession.objects.filter(
        user_id=principal.user.pk,
        last_seen_at__gt=now - timedelta(seconds=min(idle or settings.SESSION_COOKIE_AGE, settings.SESSION_COOKIE_AGE)))
    if absolute:
        qs = qs.filter(created_at__gt=now - timedelta(seconds=absolute))
    return qs.order_by("-last_seen_at", "id")


def console_session_get(*, principal: Principal, session_id: str) -> ConsoleSession:
    session = console_session_list(principal=principal).filter(pk=session_id).first()
    if session is None:
        raise errors.NotFound(f"No console session {session_id}.")
    return session


def user_exists(*, email: str) -> bool:
    """Whether an account uses this address (the invitation page asks to log in, or to choose a password)."""
    return User.objects.filter(email=User.objects.normalize_email(email).lower()).exists()


def member_emails(*, organization: Organization, roles: list[str]) -> list[str]:
    """Addresses of the organization's members with these roles, oldest membership first (system read: the
    platform mails owners and admins about their organization)."""
    return list(Membership.objects.filter(organization=organization, role__in=roles, user__is_active=True)
                .order_by("created_at", "id").values_list("user__email", flat=True))


def email_domain(email: str) -> str:
    return email.rpartition("@")[2].strip().lower().rstrip(".")


def sso_connection_for_email(*, email: str) -> SsoConnection | None:
    """The IdP an address's domain sends its people to (issue 17): a verified domain of an organization with
    SSO set up; None for every other address."""
    domain = email_domain(email)
    if not domain:
        return None
    claimed = (SsoDomain.objects.filter(domain=domain, verified_at__isnull=False)
               .select_related("organization__sso_connection").first())
    if claimed is None:
        return None
    return getattr(claimed.organization, "sso_connection", None)


def sso_connection_get(*, principal: Principal) -> SsoConnection | None:
    return SsoConnection.objects.filter(organization=principal.organization).first()


def sso_domain_list(*, principal: Principal) -> QuerySet[SsoDomain]:
    return SsoDomain.objects.filter(organization=principal.organization).order_by("domain")


def sso_domain_get(*, principal: Principal, domain_id: str) -> SsoDomain:
    sso_domain = sso_domain_list(principal=principal).filter(pk=domain_id).first()
    if sso_domain is None:
        raise errors.NotFound(f"No SSO domain {domain_id}.")
    return sso_domain


def scim_token_get(*, principal: Principal) -> ScimToken | None:
    return ScimToken.objects.filter(organization=principal.organization).first()


def scim_user_list(*, principal: Principal) -> QuerySet[ScimUser]:
    """The organization's provisioned users, with their account and groups (by name) for rendering."""
    return (ScimUser.objects.filter(organization=principal.organization).select_related("user")
            .prefetch_related(Prefetch("groups", queryset=ScimGroup.objects.order_by("display_name")))
            .order_by("created_at", "id"))


def scim_group_list(*, principal: Principal) -> QuerySet[ScimGroup]:
    return (ScimGroup.objects.filter(organization=principal.organization)
            .annotate(member_count=Count("members", distinct=True))
            .prefetch_related(Prefetch("members", queryset=ScimUser.objects.select_related("user")
                                       .order_by("created_at", "id")), "projects")
            .order_by("created_at", "id"))


def scim_group_get(*, principal: Principal, group_id: str) -> ScimGroup:
    group = scim_group_list(principal=principal).filter(pk=group_id).first()
    if group is None:
        raise errors.NotFound(f"No SCIM group {group_id}.")
    return group
