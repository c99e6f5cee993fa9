"""Tenancy: organizations, users, memberships (sub-accounts), invitations, API keys, projects, audit."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from controlplane import countries
from controlplane.crypto import EncryptedTextField
from controlplane.ids import PrefixedIdField
from projects.roles import Role

country_code_validator = RegexValidator(r"^[A-Z]{2}$", "Use an ISO 3166-1 alpha-2 country code such as DE or US.")


class Site(models.TextChoices):
    GLOBAL = "global", "Global (USD)"
    CN = "cn", "China (CNY)"


SITE_CURRENCY = {Site.GLOBAL: "USD", Site.CN: "CNY"}


class Organization(models.Model):
    """A tenant. Every tenant-owned row points here; nothing crosses between organizations."""

    id = PrefixedIdField(prefix="org")
    name = models.CharField(max_length=100)
    site = models.CharField(max_length=10, choices=Site.choices, default=Site.GLOBAL)
    country = models.CharField(max_length=2, validators=[country_code_validator])
    # Flagship tier is an invite-only trial; only operators switch it on.
    flagship_enabled = models.BooleanField(default=False)
    # Security policy (issue 17). Kept on the organization row itself, not a table beside it: every request
    # inside the organization already has this row in hand (API keys carry it in projects.key_cache, whose
    # token any save of the organization retires), so the allowlist and timeouts cost no query to enforce.
    ip_allowlist = models.JSONField(
        default=list, blank=True,
        help_text="CIDRs (IPv4 or IPv6) the console and the API accept requests from; empty: any address.")
    session_idle_timeout_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="A console session ends after this long without a request; empty: "
                                         "the platform's session lifetime.")
    session_absolute_timeout_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="A console session ends this long after login, active or not; empty: "
                                         "the platform's session lifetime.")
    end_sessions_on_removal = models.BooleanField(
        default=False, help_text="A member removed from the organization is logged out of every console session.")
    require_two_factor = models.BooleanField(
        default=False, help_text="Members without two-factor login are sent to enrol before anything else.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"

    @property
    def currency(self) -> str:
        return SITE_CURRENCY[self.site]

    def clean(self) -> None:
        # The field's regex only checks the shape ("XX" passes); the list is checked here, so every writer
        # (signup, the API, the ops site) refuses unassigned codes.
        if len(self.country) == 2 and not countries.is_country_code(self.country):
            raise ValidationError({"country": countries.country_error(self.country)})


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra) -> User:
        if not email:
            raise ValueError("email is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.full_clean(exclude=["password"])
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who logs in with an email. Staff users are our operators (the ops site)."""

    id = PrefixedIdField(prefix="usr")
    email = models.EmailField(unique=True, max_length=254)
    name = models.CharField(max_length=100, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="Operators who may use the ops site.")
    date_joined = models.DateTimeField(default=timezone.now, editable=False)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    def __str__(self) -> str:
        return self.email

    @property
    def created_at(self):
        return self.date_joined


class ConsoleSession(models.Model):
    """One console login of a person: the record beside Django's session that lets them list and end it.

    Django's session table is keyed by session key and holds encoded data; listing a person's sessions there
    would mean decoding every row. This row is indexed by user and follows the session's key as it rotates
    (login, password change). It is deleted with the session: no row, no session.
    """

    id = PrefixedIdField(prefix="ses")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="console_sessions")
    session_key = models.CharField(max_length=40, unique=True)
    device = models.CharField(max_length=120, blank=True, help_text="Browser and system, from the user agent.")
    user_agent = models.CharField(max_length=256, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True, help_text="The address of the latest recorded request.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # Written at most once a minute per session (projects.sessions), so reads do not all turn into writes.
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["user", "-last_seen_at"])]

    def __str__(self) -> str:
        return f"{self.device or 'unknown device'} ({self.id})"


class TwoFactorDevice(models.Model):
    """A person's TOTP authenticator (RFC 6238): the shared secret, encrypted at rest, and the last time step a
    code was accepted for, so a code cannot be used twice within its window. Unconfirmed (``confirmed_at``
    empty) between showing the secret and the first right code; only a confirmed device is asked for at login.
    """

    id = PrefixedIdField(prefix="tfa")
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="two_factor")
    secret = EncryptedTextField()
    confirmed_at = models.DateTimeField(null=True, blank=True)
    # The highest time step (unix time // 30) a code was accepted for; a code of that step or earlier is refused.
    last_used_step = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    def __str__(self) -> str:
        return f"two-factor of {self.user_id} ({self.id})"


class RecoveryCode(models.Model):
    """One single-use recovery code, stored as a SHA-256 hash (the codes carry 50 random bits each and are
    tried under the same lockout as TOTP codes, so a fast hash is enough). Used codes stay, marked, so the
    page can say how many are left."""

    id = PrefixedIdField(prefix="rcv")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="recovery_codes")
    code_hash = models.CharField(max_length=64)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "code_hash"], name="recovery_code_unique_per_user")]

    def __str__(self) -> str:
        return f"recovery code of {self.user_id} ({self.id})"


class Project(models.Model):
    """A folder for deployments inside an organization; members can be limited to some projects."""

    id = PrefixedIdField(prefix="prj")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="project_name_unique_per_org")]
        indexes = [models.Index(fields=["organization", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class ProjectLimited(models.Model):
    """A grant that may be limited to some projects: a membership, an invitation, an API key.

    ``limited_to_projects`` is the limit itself, stored, not inferred from the project rows: when the last of
    a row's projects is deleted its through rows go, and an empty set must then mean "no project", never
    "every project". Every read of the limit goes through :meth:`project_limit`.
    """

    limited_to_projects = models.BooleanField(
        default=False, help_text="Limited to the listed projects (none left: no project at all).")

    class Meta:
        abstract = True

    def project_limit(self) -> frozenset[str] | None:
        """None: every project of the organization; otherwise the ids of the projects it is limited to
        (reads ``projects.all()``, so a prefetch serves it)."""
        if not self.limited_to_projects:
            return None
        return frozenset(project.pk for project in self.projects.all())

    @staticmethod
    def seeing_projects_q(project_ids: Iterable[str]) -> Q:
        """Grants that see at least one of these projects: unlimited ones, or ones limited to one of them."""
        return Q(limited_to_projects=False) | Q(projects__in=list(project_ids))

    def set_project_limit(self, projects: list[Project]) -> None:
        """What the API and the console hand out: an empty list grants every project, otherwise those.
        The row must be saved; this saves the flag and the project rows."""
        limited = bool(projects)
        if self.limited_to_projects != limited:
            self.limited_to_projects = limited
            self.save(update_fields=["limited_to_projects"])
        self.projects.set(projects)


class Membership(ProjectLimited):
    """A user's role in an organization; with ``projects`` set it is a sub-account limited to them."""

    id = PrefixedIdField(prefix="mem")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    projects = models.ManyToManyField(Project, blank=True, related_name="limited_memberships")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    # Issue 17: with "require SSO" an owner flagged here may still log in with a password (the IdP may fail).
    sso_break_glass = models.BooleanField(
        default=False, help_text="An owner who may log in with a password while the organization requires SSO.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "user"], name="one_membership_per_org")]

    def __str__(self) -> str:
        return f"{self.user_id} is {self.role} of {self.organization_id}"


class Invitation(ProjectLimited):
    """An emailed, expiring invitation to join an organization with a role (and project limits)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        ACCEPTED = "accepted"
        REVOKED = "revoked"
        EXPIRED = "expired"

    id = PrefixedIdField(prefix="inv")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(max_length=254)
    role = models.CharField(max_length=16, choices=Role.choices)
    projects = models.ManyToManyField(Project, blank=True, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # The token is looked up by its hash; the encrypted copy lets a worker (re)send the email.
    token_hash = models.CharField(max_length=64, unique=True)
    token_encrypted = EncryptedTextField()
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    email_sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            # At most one open invitation per address and organization.
            models.UniqueConstraint(fields=["organization", "email"], condition=models.Q(status="pending"),
                                    name="one_pending_invitation_per_email")
        ]

    def __str__(self) -> str:
        return f"{self.email} → {self.organization_id} ({self.status})"

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()


class ApiKey(ProjectLimited):
    """A credential for scripts: shown once, stored as a hash, scoped to one organization and a role.

    A key belongs to the member who made it (``created_by``) and acts with no more than that member's
    current rights; it dies with the membership. Only an owner makes an organization ``service`` key, which
    has no creator and outlives the people who made it.
    """

    id = PrefixedIdField(prefix="key")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    role = models.CharField(max_length=16, choices=Role.choices)
    projects = models.ManyToManyField(Project, blank=True, related_name="+")
    # "mqc_<prefix>": visible in lists so people can tell keys apart; the secret part is only hashed.
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    # SET_NULL, not CASCADE: the row (and its audit trail) stays; a non-service key without a creator is
    # unusable (see is_usable), and removing a member through the service revokes the keys first anyway.
    created_by = models.ForeignKey(Membership, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="api_keys_created")
    service = models.BooleanField(default=False, help_text="An organization key made by an owner; no creator.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["organization", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.name} (mqc_{self.prefix}…)"

    @property
    def is_usable(self) -> bool:
        if self.revoked_at is not None:
            return False
        if not self.service and self.created_by_id is None:
            return False  # its creator left (or was deleted): the key went with them
        return self.expires_at is None or self.expires_at > timezone.now()


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("The audit log is append-only.")

    def delete(self):
        raise TypeError("The audit log is append-only.")


class AuditEvent(models.Model):
    """Who did what to which object, when and from where. Append-only: rows are never changed."""

    class ActorType(models.TextChoices):
        USER = "user"
        API_KEY = "api_key"
        STAFF = "staff"
        SYSTEM = "system"
        SCIM = "scim"

    id = PrefixedIdField(prefix="evt")
    organization = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="audit_events")
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_id = models.CharField(max_length=32, blank=True)
    actor_label = models.CharField(max_length=254, blank=True)
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=254, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=256, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["organization", "-created_at"]),
            models.Index(fields=["organization", "action"]),
            models.Index(fields=["organization", "target_id"]),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} {self.target_id}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise TypeError("The audit log is append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("The audit log is append-only.")


class SsoConnection(models.Model):
    """An organization's OpenID Provider (issue 17): people of its verified domains log in there.

    ``group_mappings``: ``[{"group": "mq-admins", "role": "admin", "projects": ["prj_..."]}]``, first match wins;
    a person in none of the groups joins with ``default_role`` and every project.
    """

    id = PrefixedIdField(prefix="sso")
    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="sso_connection")
    issuer = models.URLField(max_length=300)
    client_id = models.CharField(max_length=200)
    client_secret = EncryptedTextField()
    groups_claim = models.CharField(max_length=100, default="groups")
    default_role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    group_mappings = models.JSONField(default=list, blank=True)
    require_sso = models.BooleanField(
        default=False, help_text="People of the verified domains may not log in with a password (break-glass "
                                 "owners excepted).")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"SSO of {self.organization_id} at {self.issuer}"


class SsoDomain(models.Model):
    """An email domain an organization claims for SSO; it counts only once verified (a mail to an admin address
    on the domain, or a DNS TXT record). One organization per verified domain."""

    id = PrefixedIdField(prefix="dom")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="sso_domains")
    domain = models.CharField(max_length=253)
    # The token is looked up by its hash; the encrypted copy lets a worker (re)send the mail and the page show
    # the TXT value to publish.
    token_hash = models.CharField(max_length=64, unique=True)
    token_encrypted = EncryptedTextField(blank=True)
    verification_email = models.EmailField(max_length=254, blank=True,
                                           help_text="The admin address on the domain the verification mail goes to.")
    verified_at = models.DateTimeField(null=True, blank=True)
    verified_by = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "domain"], name="sso_domain_once_per_org"),
            models.UniqueConstraint(fields=["domain"], condition=Q(verified_at__isnull=False),
                                    name="sso_domain_verified_once"),
        ]

    def __str__(self) -> str:
        return self.domain


# The SCIM models live with their package; imported here so the app registry loads them with these.
from projects.scim.models import ScimGroup, ScimToken, ScimUser  # noqa: E402, F401
