"""SSO settings under ``/api/v1/organization/sso`` (issue 17): the organization's OpenID Provider and the email
domains it has proven. Thin, like every endpoint: the services in projects.services.sso_settings decide."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane import errors
from controlplane.api.serializers import InputSerializer, OutputSerializer
from projects import selectors
from projects.api.base import OrganizationScopedViewSet
from projects.models import SsoConnection, SsoDomain
from projects.roles import GRANTABLE_ROLES, Perm, Role
from projects.services.sso_settings import (
    ADMIN_MAILBOXES,
    sso_configure,
    sso_domain_add,
    sso_domain_check_dns,
    sso_domain_remove,
    sso_unlink,
    txt_record_value,
)
from projects.session_tracking import current_console_session_id
from projects.tenancy import Principal

_GRANTABLE = list(GRANTABLE_ROLES)


class GroupMappingSerializer(serializers.Serializer):
    group = serializers.CharField(max_length=200, help_text="A value of the groups claim.")
    role = serializers.ChoiceField(choices=_GRANTABLE)
    projects = serializers.ListField(child=serializers.CharField(max_length=40), required=False, default=list,
                                     help_text="Project ids the member is limited to; empty: every project.")


class SsoConnectionOut(OutputSerializer):
    group_mappings = GroupMappingSerializer(many=True, read_only=True)
    break_glass_member_ids = serializers.SerializerMethodField(
        help_text="Owners who may still log in with a password while SSO is required.")
    redirect_uri = serializers.SerializerMethodField(help_text="The callback to register at the IdP.")

    class Meta:
        model = SsoConnection
        fields = ["id", "issuer", "client_id", "groups_claim", "default_role", "group_mappings", "require_sso",
                  "break_glass_member_ids", "redirect_uri", "created_at", "updated_at"]
        read_only_fields = fields

    def get_break_glass_member_ids(self, obj: SsoConnection) -> list[str]:
        return sorted(obj.organization.memberships.filter(sso_break_glass=True).values_list("pk", flat=True))

    def get_redirect_uri(self, obj: SsoConnection) -> str:
        return self.context.get("redirect_uri", "")


class SsoConnectionIn(InputSerializer):
    issuer = serializers.URLField(max_length=300, help_text="https (http only on loopback).")
    client_id = serializers.CharField(max_length=200)
    client_secret = serializers.CharField(max_length=500, required=False, write_only=True,
                                          help_text="Stored encrypted, never shown again; omit to keep the stored "
                                                    "one.")
    groups_claim = serializers.CharField(max_length=100, required=False, default="groups")
    default_role = serializers.ChoiceField(choices=_GRANTABLE, required=False, default=Role.VIEWER)
    group_mappings = GroupMappingSerializer(many=True, required=False, default=list)
    require_sso = serializers.BooleanField(required=False, default=False)
    break_glass_member_ids = serializers.ListField(child=serializers.CharField(max_length=40), required=False)


class SsoDomainOut(OutputSerializer):
    verified = serializers.SerializerMethodField()
    txt_record = serializers.SerializerMethodField(help_text="The TXT record that proves the domain by DNS.")

    class Meta:
        model = SsoDomain
        fields = ["id", "domain", "verified", "verified_at", "verified_by", "verification_email", "txt_record",
                  "created_at"]
        read_only_fields = fields

    def get_verified(self, obj: SsoDomain) -> bool:
        return obj.verified_at is not None

    def get_txt_record(self, obj: SsoDomain) -> str:
        return txt_record_value(obj)


class SsoDomainIn(InputSerializer):
    domain = serializers.CharField(max_length=253)
    mailbox = serializers.ChoiceField(choices=list(ADMIN_MAILBOXES), required=False, allow_null=True,
                                      default="admin",
                                      help_text="The verification mail goes to mailbox@domain; null: DNS TXT only.")


class OrganizationSsoViewSet(OrganizationScopedViewSet):
    """The organization's OpenID Provider."""

    permission_by_action = {"retrieve": Perm.ORGANIZATION_MANAGE, "update": Perm.ORGANIZATION_MANAGE,
                            "destroy": Perm.ORGANIZATION_MANAGE}
    serializer_class = SsoConnectionOut

    def _render(self, connection: SsoConnection) -> Response:
        uri = self.request.build_absolute_uri("/console/sso/callback")
        return Response(SsoConnectionOut(connection, context={"redirect_uri": uri}).data)

    @extend_schema(responses=SsoConnectionOut, description="404 while no IdP is set up.")
    def retrieve(self, request: Request) -> Response:
        connection = selectors.sso_connection_get(principal=self.principal)
        if connection is None:
            raise errors.NotFound("This organization has no SSO set up.")
        return self._render(connection)

    @extend_schema(request=SsoConnectionIn, responses=SsoConnectionOut,
                   description="Set up or change the IdP. require_sso needs a verified domain (400 otherwise).")
    def update(self, request: Request) -> Response:
        data = SsoConnectionIn(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        fields["group_mappings"] = [dict(mapping) for mapping in fields.get("group_mappings", [])]
        return self._render(sso_configure(principal=self.principal, **fields))

    @extend_schema(responses={204: None}, description="Unlink the IdP: every console session of the people of the "
                                                      "verified domains ends (but the caller's own).")
    def destroy(self, request: Request) -> Response:
        sso_unlink(principal=self.principal, keep_session_id=current_console_session_id(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SsoDomainViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    """Email domains claimed for SSO; one counts once verified (mail to an admin mailbox, or DNS TXT)."""

    permission_by_action = {name: Perm.ORGANIZATION_MANAGE
                            for name in ("list", "retrieve", "create", "destroy", "verify_dns")}
    serializer_class = SsoDomainOut
    http_method_names = ["get", "post", "delete", "head", "options"]

    def scoped_queryset(self, principal: Principal) -> QuerySet:
        return selectors.sso_domain_list(principal=principal)

    @extend_schema(request=SsoDomainIn, responses={201: SsoDomainOut},
                   description="Claim a domain; the verification mail goes out at once (409 if another "
                               "organization verified it).")
    def create(self, request: Request) -> Response:
        data = SsoDomainIn(data=request.data)
        data.is_valid(raise_exception=True)
        sso_domain = sso_domain_add(principal=self.principal, **data.validated_data)
        return Response(SsoDomainOut(sso_domain).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        sso_domain_remove(principal=self.principal, sso_domain=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=SsoDomainOut,
                   description="Look for the TXT record now; 400 while it is not there.")
    @action(detail=True, methods=["post"], url_path="verify-dns")
    def verify_dns(self, request: Request, pk: str) -> Response:
        sso_domain = sso_domain_check_dns(principal=self.principal, sso_domain=self.get_object())
        return Response(SsoDomainOut(sso_domain).data)
