"""API of a deployment's MQTT access: ``/deployments/{id}/mqtt-users[/{username}|/import]`` and
``/deployments/{id}/acl``. A viewset of its own on the ``deployments`` prefix (detail actions only), so the
deployment itself is looked up, scoped and permission-checked by the tenancy base like every other route."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from controlplane import errors
from controlplane.api.pagination import CursorLimitPagination
from controlplane.api.serializers import InputSerializer
from deployments import selectors as deployment_selectors
from deployments.models import MqttUser
from deployments.mqtt_access import imports, selectors, services
from deployments.mqtt_access.validation import IMPORT_MAX, PASSWORD_MAX_BYTES, USERNAME_MAX
from projects.api.base import OrganizationScopedViewSet
from projects.roles import Perm
from projects.tenancy import Principal

#: 100,000 lines of the longest username (128 characters, up to 512 bytes) and password (256 bytes): ~74 MiB.
CSV_BODY_MAX_BYTES = 80 * 2**20


class CsvStreamParser(BaseParser):
    """Takes a ``text/csv`` body without reading it: ``request.data`` is the request's byte stream, read by the
    import as it goes. (DRF parses on the first look at the data, which the CSRF check of session
    authentication makes before the view runs; a parser that read the body there would hold all of it.)"""

    media_type = "text/csv"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        return stream


# --- serializers: shapes only; the services validate the values and answer field errors ---------------
class MqttUserIn(InputSerializer):
    username = serializers.CharField(max_length=USERNAME_MAX * 4, trim_whitespace=False,
                                     help_text=f"1 to {USERNAME_MAX} characters; compared ignoring case and "
                                               "Unicode form.")
    password = serializers.CharField(required=False, write_only=True, trim_whitespace=False,
                                     max_length=PASSWORD_MAX_BYTES * 4,
                                     help_text="8 to 256 bytes. Omit it to have one generated and returned once.")
    is_superuser = serializers.BooleanField(default=False,
                                            help_text="A superuser skips the ACL (use for back-end services only).")


class MqttUserPatchIn(InputSerializer):
    password = serializers.CharField(required=False, write_only=True, trim_whitespace=False,
                                     max_length=PASSWORD_MAX_BYTES * 4)
    is_superuser = serializers.BooleanField(required=False)


class MqttUserOut(serializers.ModelSerializer):
    class Meta:
        model = MqttUser
        fields = ["username", "is_superuser", "created_at", "updated_at"]


class MqttUserCreatedOut(MqttUserOut):
    password = serializers.CharField(required=False, help_text="Only when generated: shown this once.")

    class Meta(MqttUserOut.Meta):
        fields = [*MqttUserOut.Meta.fields, "password"]


class MqttUsersImportIn(InputSerializer):
    users = serializers.ListField(
        child=serializers.JSONField(), max_length=IMPORT_MAX, allow_empty=False,
        help_text="`[{username, password, is_superuser?}]` or `[{username, password_hash, salt, algorithm: "
                  "pbkdf2_sha256, is_superuser?}]` (PBKDF2-HMAC-SHA256, 4096 iterations, 32-byte key in hex).")


class ImportErrorOut(serializers.Serializer):
    index = serializers.IntegerField()
    username = serializers.CharField(allow_null=True)
    line = serializers.IntegerField(required=False, help_text="The line of a CSV body.")
    message = serializers.CharField()


class MqttUsersImportOut(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    errors = ImportErrorOut(many=True, help_text=f"The first {imports.ERRORS_LISTED}.")
    errors_total = serializers.IntegerField()
    dry_run = serializers.BooleanField()


class AclIn(InputSerializer):
    rules = serializers.ListField(child=serializers.JSONField(),
                                  help_text="Ordered; the first rule that applies decides.")
    no_match = serializers.CharField(default="deny", help_text='"deny" (default) or "allow".')


class AclOut(serializers.Serializer):
    rules = serializers.ListField(child=serializers.JSONField())
    no_match = serializers.CharField()
    generation = serializers.IntegerField(help_text="Bumped by every change to the users or the rules.")
    applied_generation = serializers.IntegerField(help_text="The generation the broker holds.")


def _acl_out(access) -> dict:
    return {"rules": access.acl_rules, "no_match": access.acl_no_match, "generation": access.generation,
            "applied_generation": access.applied_generation}


class ConnectedClientOut(serializers.Serializer):
    clientid = serializers.CharField()
    username = serializers.CharField(allow_null=True)
    ip_address = serializers.CharField()
    connected_at = serializers.CharField()
    protocol = serializers.CharField()


class ConnectedClientsOut(serializers.Serializer):
    results = ConnectedClientOut(many=True)
    next = serializers.CharField(allow_null=True, help_text="Always null: narrow with the filters instead.")


class MqttUserPagination(CursorLimitPagination):
    ordering = ("username_key", "id")


USERNAME_FILTER = OpenApiParameter("username", OpenApiTypes.STR, description="Usernames starting with this "
                                   "(ignoring case).")


class DeploymentMqttAccessViewSet(OrganizationScopedViewSet):
    """Device credentials (the built-in authentication database) and the ACL of a deployment."""

    permission_by_action = {action: Perm.DEPLOYMENTS_WRITE for action in (
        "mqtt_users_create", "mqtt_users_import", "mqtt_users_member_patch", "mqtt_users_member_delete", "acl_put",
        "clients_member_delete")}
    pagination_class = MqttUserPagination

    def scoped_queryset(self, principal: Principal) -> QuerySet:
        return deployment_selectors.deployment_list(principal=principal)

    # The import route must come before the member route (``{username}`` would match "import"): DRF adds
    # extra actions in name order, and "mqtt_users_import" sorts before "mqtt_users_member".
    @extend_schema(parameters=[USERNAME_FILTER], responses=MqttUserOut(many=True))
    @action(detail=True, methods=["get"], url_path="mqtt-users")
    def mqtt_users(self, request: Request, pk: str) -> Response:
        username = request.query_params.get("username")
        users = selectors.mqtt_user_list(deployment=self.get_object(), username=username)
        page = self.paginate_queryset(users)
        return self.get_paginated_response(MqttUserOut(page, many=True).data)

    @extend_schema(request=MqttUserIn, responses={201: MqttUserCreatedOut})
    @mqtt_users.mapping.post
    def mqtt_users_create(self, request: Request, pk: str) -> Response:
        deployment = self.get_object()
        data = MqttUserIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        user, generated = services.mqtt_user_create(
            principal=self.principal, deployment=deployment, username=values["username"],
            password=values.get("password"), is_superuser=values["is_superuser"])
        body = MqttUserOut(user).data
        if generated is not None:
            body["password"] = generated
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request={"application/json": MqttUsersImportIn, "text/csv": OpenApiTypes.STR},
                   responses=MqttUsersImportOut, parameters=[
        OpenApiParameter("dry_run", OpenApiTypes.BOOL, description="Report what would change; change nothing.")],
        description="Creates or updates many users: all of them, or none when a row is invalid (400 naming "
                    "each row). Usernames already present are updated; identical ones are `unchanged`. "
                    f"A `text/csv` body is read as it arrives, for files too big to send as JSON: {imports.CSV_FORMAT} "
                    "Its errors also give the `line`.")
    @action(detail=True, methods=["post"], url_path="mqtt-users/import",
            parser_classes=[*api_settings.DEFAULT_PARSER_CLASSES, CsvStreamParser])
    def mqtt_users_import(self, request: Request, pk: str) -> Response:
        deployment = self.get_object()
        dry_run = request.query_params.get("dry_run", "false").lower()
        if dry_run not in ("true", "false", "1", "0"):
            raise errors.field_invalid("dry_run", "Must be true or false.")
        users: Iterable[object]
        if request.content_type.split(";")[0].strip().lower() == "text/csv":
            self._check_csv_length(request)
            body = request.data  # the stream itself (CsvStreamParser); an empty body has none
            users = imports.csv_lines_from_bytes(body if hasattr(body, "read") else io.BytesIO())
        else:
            data = MqttUsersImportIn(data=request.data)
            data.is_valid(raise_exception=True)
            users = data.validated_data["users"]
        result = imports.mqtt_users_import(principal=self.principal, deployment=deployment, users=users,
                                           dry_run=dry_run in ("true", "1"))
        return Response({**result.as_dict(), "dry_run": dry_run in ("true", "1")})

    @staticmethod
    def _check_csv_length(request: Request) -> None:
        """Refuses a body over ``CSV_BODY_MAX_BYTES`` before reading it (Django reads at most Content-Length)."""
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > CSV_BODY_MAX_BYTES:
            raise errors.field_invalid("users", f"The CSV body is over {CSV_BODY_MAX_BYTES // 2**20} MiB; "
                                                "split the file.")

    @extend_schema(responses=MqttUserOut)
    @action(detail=True, methods=["get"], url_path=r"mqtt-users/(?P<username>[^/]+)")
    def mqtt_users_member(self, request: Request, pk: str, username: str) -> Response:
        user = selectors.mqtt_user_get(deployment=self.get_object(), username=username)
        return Response(MqttUserOut(user).data)

    @extend_schema(request=MqttUserPatchIn, responses=MqttUserOut)
    @mqtt_users_member.mapping.patch
    def mqtt_users_member_patch(self, request: Request, pk: str, username: str) -> Response:
        deployment = self.get_object()
        user = selectors.mqtt_user_get(deployment=deployment, username=username)
        data = MqttUserPatchIn(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.mqtt_user_update(principal=self.principal, deployment=deployment, user=user,
                                         **data.validated_data)
        return Response(MqttUserOut(user).data)

    @extend_schema(request=None, responses={204: None})
    @mqtt_users_member.mapping.delete
    def mqtt_users_member_delete(self, request: Request, pk: str, username: str) -> Response:
        deployment = self.get_object()
        user = selectors.mqtt_user_get(deployment=deployment, username=username)
        services.mqtt_user_delete(principal=self.principal, deployment=deployment, user=user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=AclOut)
    @action(detail=True, methods=["get"], url_path="acl")
    def acl(self, request: Request, pk: str) -> Response:
        return Response(_acl_out(selectors.mqtt_access_get(deployment=self.get_object())))

    @extend_schema(request=AclIn, responses=AclOut, description="Replaces the ordered rules and `no_match`.")
    @acl.mapping.put
    def acl_put(self, request: Request, pk: str) -> Response:
        deployment = self.get_object()
        data = AclIn(data=request.data)
        data.is_valid(raise_exception=True)
        access = services.acl_put(principal=self.principal, deployment=deployment,
                                  rules=data.validated_data["rules"], no_match=data.validated_data["no_match"])
        return Response(_acl_out(access))

    @extend_schema(parameters=[
        OpenApiParameter("clientid", OpenApiTypes.STR, description="Client ids containing this."),
        OpenApiParameter("username", OpenApiTypes.STR, description="Usernames containing this."),
        OpenApiParameter("limit", OpenApiTypes.INT, description="At most this many (default 50, max 200).")],
        responses=ConnectedClientsOut, description="The clients connected now, as the broker reports them. "
                                                   "503 with Retry-After when the broker cannot be reached.")
    @action(detail=True, methods=["get"], url_path="clients")
    def clients(self, request: Request, pk: str) -> Response:
        deployment = self.get_object()
        limit = self.paginator.get_page_size(request)
        found = selectors.connected_clients(deployment=deployment, clientid=request.query_params.get("clientid", ""),
                                            username=request.query_params.get("username", ""), limit=limit)
        return Response({"results": [ConnectedClientOut(client).data for client in found], "next": None})

    @extend_schema(request=None, responses={204: None}, description="Disconnects the client now (audited). "
                   "404 when it is not connected.")
    @action(detail=True, methods=["delete"], url_path=r"clients/(?P<clientid>[^/]+)")
    def clients_member_delete(self, request: Request, pk: str, clientid: str) -> Response:
        services.client_disconnect(principal=self.principal, deployment=self.get_object(), clientid=clientid)
        return Response(status=status.HTTP_204_NO_CONTENT)
