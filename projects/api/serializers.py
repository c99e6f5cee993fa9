"""Input serializers check shape; output serializers render. Rules live in services."""

from __future__ import annotations

from rest_framework import serializers

from controlplane.api.serializers import CountryCodeField, InputSerializer, OutputSerializer, PrefixedIdListField
from projects.models import (
    ApiKey,
    AuditEvent,
    ConsoleSession,
    Invitation,
    Membership,
    Organization,
    Project,
    ProjectLimited,
    ScimGroup,
    Site,
    User,
)
from projects.roles import Role


# --- output -----------------------------------------------------------------------------------------
class OrganizationOut(OutputSerializer):
    currency = serializers.CharField(read_only=True)

    class Meta:
        model = Organization
        fields = ["id", "name", "site", "currency", "country", "flagship_enabled", "created_at"]
        read_only_fields = fields


class SecurityPolicyOut(OutputSerializer):
    your_ip = serializers.SerializerMethodField(
        help_text="The address this request came from, as the allowlist sees it (behind NUM_PROXIES proxies).")

    class Meta:
        model = Organization
        fields = ["ip_allowlist", "session_idle_timeout_minutes", "session_absolute_timeout_minutes",
                  "end_sessions_on_removal", "require_two_factor", "your_ip"]
        read_only_fields = fields

    def get_your_ip(self, obj: Organization) -> str | None:
        return self.context.get("your_ip")


class ConsoleSessionOut(OutputSerializer):
    current = serializers.SerializerMethodField(help_text="The session this request was made with.")

    class Meta:
        model = ConsoleSession
        fields = ["id", "device", "user_agent", "ip", "created_at", "last_seen_at", "current"]
        read_only_fields = fields

    def get_current(self, obj: ConsoleSession) -> bool:
        return obj.pk == self.context.get("current_session_id")


class SessionsEndedOut(serializers.Serializer):
    ended = serializers.IntegerField(help_text="How many sessions ended.")


class UserOut(OutputSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "name", "date_joined"]
        read_only_fields = fields


class ProjectOut(OutputSerializer):
    class Meta:
        model = Project
        fields = ["id", "name", "description", "created_at", "updated_at"]
        read_only_fields = fields


class ProjectLimitOut(serializers.Serializer):
    """``projects`` and ``limited`` of a grant (member, invitation, key), read through its one helper."""

    projects = serializers.SerializerMethodField(
        help_text="Project ids it is limited to; empty with limited false means every project.")
    limited = serializers.SerializerMethodField(
        help_text="Limited to the listed projects; true with none listed means no project at all.")

    def get_projects(self, obj: ProjectLimited) -> list[str]:
        return sorted(obj.project_limit() or ())

    def get_limited(self, obj: ProjectLimited) -> bool:
        return obj.project_limit() is not None


class MemberOut(ProjectLimitOut, OutputSerializer):
    user = UserOut(read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "user", "email", "role", "projects", "limited", "created_at"]
        read_only_fields = fields


class InvitationOut(ProjectLimitOut, OutputSerializer):
    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "projects", "limited", "status", "expires_at", "email_sent_at",
                  "accepted_at", "created_at"]
        read_only_fields = fields


class ApiKeyOut(ProjectLimitOut, OutputSerializer):
    prefix = serializers.SerializerMethodField(help_text="The visible start of the key, to tell keys apart.")
    created_by = serializers.CharField(
        source="created_by_id", read_only=True, allow_null=True,
        help_text="The member (mem_…) whose key it is, or null for an organization service key (or once its "
                  "creator has left; the key is then revoked).")
    service = serializers.BooleanField(read_only=True, help_text="An organization service key made by an owner.")

    class Meta:
        model = ApiKey
        fields = ["id", "name", "role", "projects", "limited", "prefix", "created_by", "service", "created_at",
                  "expires_at", "revoked_at", "last_used_at", "last_used_ip"]
        read_only_fields = fields

    def get_prefix(self, obj: ApiKey) -> str:
        return f"mqc_{obj.prefix}"


class ApiKeyCreatedOut(ApiKeyOut):
    key = serializers.CharField(read_only=True, help_text="The secret. Shown only in this response.")

    class Meta(ApiKeyOut.Meta):
        fields = [*ApiKeyOut.Meta.fields, "key"]
        read_only_fields = fields


class AuditEventOut(OutputSerializer):
    actor = serializers.SerializerMethodField()
    target = serializers.SerializerMethodField()

    class Meta:
        model = AuditEvent
        fields = ["id", "action", "actor", "target", "changes", "ip", "user_agent", "created_at"]
        read_only_fields = fields

    def get_actor(self, obj: AuditEvent) -> dict:
        return {"type": obj.actor_type, "id": obj.actor_id, "label": obj.actor_label}

    def get_target(self, obj: AuditEvent) -> dict:
        return {"type": obj.target_type, "id": obj.target_id, "label": obj.target_label}


class SignupOut(serializers.Serializer):
    organization = OrganizationOut()
    user = UserOut()
    api_key = ApiKeyCreatedOut()


# --- input ------------------------------------------------------------------------------------------
class SignupIn(InputSerializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)
    organization_name = serializers.CharField(max_length=100)
    site = serializers.ChoiceField(choices=Site.choices)
    country = CountryCodeField()
    name = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)


class OrganizationPatchIn(InputSerializer):
    name = serializers.CharField(max_length=100, required=False)
    country = CountryCodeField(required=False)


class SecurityPolicyPatchIn(InputSerializer):
    ip_allowlist = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=200,
        help_text="CIDRs, IPv4 or IPv6 (a bare address is one host). Empty: every address. A non-empty list must "
                  "include the address of this request, or it is refused (400) so nobody locks themselves out.")
    session_idle_timeout_minutes = serializers.IntegerField(
        required=False, allow_null=True, help_text="null: no idle timeout of the organization's own.")
    session_absolute_timeout_minutes = serializers.IntegerField(
        required=False, allow_null=True, help_text="null: no absolute timeout of the organization's own.")
    end_sessions_on_removal = serializers.BooleanField(required=False)
    require_two_factor = serializers.BooleanField(
        required=False, help_text="Members must log in with two-factor; those without it are sent to enrol first "
                                  "(and their sessions get 403 two-factor-required from the API). Turning it on "
                                  "needs two-factor on the caller's own account (400 otherwise).")


class ProjectIn(InputSerializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(max_length=500, required=False, default="", allow_blank=True)


class ProjectPatchIn(InputSerializer):
    name = serializers.CharField(max_length=100, required=False)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)


class MemberPatchIn(InputSerializer):
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    projects = PrefixedIdListField(prefix="prj", required=False,
                                   help_text="Project ids the member is limited to; empty means all.")


class InvitationIn(InputSerializer):
    email = serializers.EmailField(max_length=254)
    role = serializers.ChoiceField(choices=Role.choices)
    projects = PrefixedIdListField(prefix="prj", required=False, default=list)


class InvitationAcceptIn(InputSerializer):
    token = serializers.CharField(max_length=200)
    password = serializers.CharField(max_length=128, required=False, write_only=True, trim_whitespace=False)
    name = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)


class InvitationAcceptOut(serializers.Serializer):
    organization = OrganizationOut()
    member = MemberOut()


class ApiKeyIn(InputSerializer):
    name = serializers.CharField(max_length=100)
    role = serializers.ChoiceField(choices=Role.choices)
    projects = PrefixedIdListField(prefix="prj", required=False, default=list)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    service = serializers.BooleanField(
        required=False, default=False,
        help_text="An organization service key (owners only): no creator, so it outlives the member who made it.")


# --- passwords --------------------------------------------------------------------------------------
class PasswordResetIn(InputSerializer):
    email = serializers.EmailField(max_length=254)


class PasswordResetConfirmIn(InputSerializer):
    token = serializers.CharField(max_length=300, allow_blank=True, trim_whitespace=True)
    new_password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)


class PasswordChangeIn(InputSerializer):
    current_password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)
    new_password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)


class DetailOut(serializers.Serializer):
    detail = serializers.CharField(read_only=True)


class ScimTokenOut(serializers.Serializer):
    """The SCIM token's status; ``token`` (the secret) only in the answer to the POST that made it."""

    enabled = serializers.BooleanField(help_text="The organization has a SCIM token.")
    base_url = serializers.CharField(help_text="The SCIM 2.0 endpoint the identity provider is pointed at.")
    prefix = serializers.CharField(allow_null=True, help_text="scim_<prefix>…, to tell tokens apart.")
    role = serializers.CharField(allow_null=True, help_text="The role the token acts with: its creator's.")
    created_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)
    token = serializers.CharField(required=False, help_text="The secret, shown once (POST only).")


class ScimGroupOut(ProjectLimitOut, OutputSerializer):
    """A group the identity provider pushed, and what it grants its members (set here, by an admin)."""

    members = serializers.IntegerField(source="member_count", read_only=True,
                                       help_text="How many provisioned users are in it.")

    class Meta:
        model = ScimGroup
        fields = ["id", "display_name", "external_id", "role", "projects", "limited", "members", "created_at"]
        read_only_fields = fields


class ScimGroupPatchIn(InputSerializer):
    role = serializers.ChoiceField(choices=[("", "none"), *[(r, r) for r in ("admin", "developer", "billing",
                                                                           "viewer")]],
                                   required=False, allow_blank=True,
                                   help_text="The role members get from this group; empty: none. Never owner.")
    projects = PrefixedIdListField(prefix="prj", required=False,
                                   help_text="Project ids the role is limited to; empty means all.")
