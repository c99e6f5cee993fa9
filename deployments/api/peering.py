"""API of VPC peerings: ``/deployments/{id}/peerings`` (on the deployment viewset, via the mixin) and
``/peerings/{id}``. Views are thin: input serializers check shape, the services apply the rules."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.api.pagination import CursorLimitPagination
from controlplane.api.serializers import InputSerializer
from deployments.api.operations import accepted
from deployments.models import Peering, PeeringEvent, PeeringStatus, Provider
from deployments.operations import selectors as operation_selectors
from deployments.peering import selectors, services
from deployments.peering.instructions import instructions
from projects.api.base import OrganizationScopedViewSet
from projects.roles import Perm
from projects.tenancy import Principal


# --- serializers ------------------------------------------------------------------------------------
class PeeringIn(InputSerializer):
    provider = serializers.ChoiceField(choices=Provider.choices)
    cidr = serializers.CharField(max_length=43, help_text="Your network: a private (RFC 1918) IPv4 CIDR, /16 to "
                                                          "/28, not overlapping the region's platform network.")
    account_id = serializers.CharField(max_length=64, required=False, help_text="AWS: your 12-digit account id.")
    vpc_id = serializers.CharField(max_length=64, required=False, help_text="AWS: vpc-…")
    region = serializers.CharField(max_length=64, required=False, help_text="AWS: your VPC's region, e.g. us-east-1.")
    tenant_id = serializers.CharField(max_length=64, required=False, help_text="Azure: your tenant id (UUID).")
    subscription_id = serializers.CharField(max_length=64, required=False,
                                            help_text="Azure: the subscription of your VNet (UUID).")
    resource_group = serializers.CharField(max_length=128, required=False, help_text="Azure: your VNet's group.")
    vnet_name = serializers.CharField(max_length=128, required=False, help_text="Azure: your VNet's name.")


class PeeringInstructionsOut(serializers.Serializer):
    provider = serializers.CharField()
    platform_cidr = serializers.CharField()
    peering_connection_id = serializers.CharField(required=False, allow_null=True, help_text="AWS: pcx-…")
    region = serializers.CharField(required=False)
    platform_vnet_id = serializers.CharField(required=False, help_text="Azure: our VNet's resource id.")
    steps = serializers.ListField(child=serializers.CharField())
    commands = serializers.ListField(child=serializers.CharField())


class PeeringOut(serializers.ModelSerializer):
    deployment = serializers.CharField(source="deployment_id", read_only=True)
    region = serializers.CharField(source="peer_region", read_only=True, help_text="AWS: your VPC's region.")
    instructions = serializers.SerializerMethodField(help_text="What you must do on your side.")

    AWS_ONLY = ("account_id", "vpc_id", "region")
    AZURE_ONLY = ("tenant_id", "subscription_id", "resource_group", "vnet_name")

    class Meta:
        model = Peering
        fields = ["id", "deployment", "provider", "cidr", "account_id", "vpc_id", "region", "tenant_id",
                  "subscription_id", "resource_group", "vnet_name", "status", "status_reason", "cloud_id",
                  "cloud_state", "requested_at", "expires_at", "activated_at", "created_at", "updated_at",
                  "instructions"]
        read_only_fields = fields

    @extend_schema_field(PeeringInstructionsOut)
    def get_instructions(self, obj: Peering) -> dict:
        return instructions(obj)

    def to_representation(self, instance: Peering) -> dict:
        data = super().to_representation(instance)
        for name in self.AZURE_ONLY if instance.provider == Provider.AWS else self.AWS_ONLY:
            data[name] = None
        return data


class PeeringEventOut(serializers.ModelSerializer):
    class Meta:
        model = PeeringEvent
        fields = ["id", "from_status", "to_status", "reason", "actor_label", "created_at"]
        read_only_fields = fields


def _accepted(peering: Peering) -> Response:
    # The peering came through the tenancy base, so its latest operation is the caller's too.
    return accepted(PeeringOut(peering).data, operation_selectors.operation_latest_for_peering(peering_id=peering.id))


# --- /deployments/{id}/peerings ---------------------------------------------------------------------
class DeploymentPeeringsMixin:
    """Mixed into the deployment viewset, so the deployment is resolved (and scoped) by the tenancy base."""

    @extend_schema(methods=["GET"], request=None, responses=PeeringOut(many=True),
                   description="The deployment's peerings (deleted ones left out).")
    @extend_schema(methods=["POST"], request=PeeringIn, responses={202: PeeringOut},
                   description="Requests a peering with your AWS VPC or Azure VNet: 202 with status `pending`; poll "
                               "`/peerings/{id}` and follow its `instructions`. 400 with the reason per field "
                               "(formats, a public, too large or too small CIDR, an overlap with the platform "
                               "network or another peering); 409 for `basic` deployments.")
    @action(detail=True, methods=["get", "post"], url_path="peerings")
    def peerings(self, request: Request, pk: str) -> Response:
        deployment = self.get_object()
        if request.method == "POST":
            self.principal.require(Perm.DEPLOYMENTS_WRITE)
            data = PeeringIn(data=request.data)
            data.is_valid(raise_exception=True)
            values = dict(data.validated_data)
            provider = values.pop("provider")
            peering = services.peering_create(principal=self.principal, deployment=deployment, provider=provider,
                                              fields=values)
            return _accepted(peering)
        queryset = selectors.peering_list(principal=self.principal, deployment=deployment)
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(PeeringOut(page, many=True).data)


# --- /peerings/{id} ---------------------------------------------------------------------------------
class PeeringFilter(django_filters.FilterSet):
    deployment = django_filters.CharFilter(field_name="deployment_id")
    status = django_filters.ChoiceFilter(choices=PeeringStatus.choices)
    provider = django_filters.ChoiceFilter(choices=Provider.choices)

    class Meta:
        model = Peering
        fields = ["deployment", "status", "provider"]


class EventPagination(CursorLimitPagination):
    ordering = ("created_at", "id")


class PeeringViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    """VPC peerings. DELETE answers 202 with status `deleting` (plus `operation` and its `Location`); poll until
    `deleted`."""

    permission_by_action = {"destroy": Perm.DEPLOYMENTS_WRITE, "retry": Perm.DEPLOYMENTS_WRITE}
    serializer_class = PeeringOut
    filterset_class = PeeringFilter
    http_method_names = ["get", "post", "delete", "head", "options"]

    def scoped_queryset(self, principal: Principal) -> QuerySet:
        # A deleted peering stays readable by id (polling ends on `deleted`), but lists leave it out.
        action_name = getattr(self, "action", None)
        include_deleted = action_name != "list" or self.request.query_params.get("status") == PeeringStatus.DELETED
        return selectors.peering_list(principal=principal, include_deleted=include_deleted)

    @extend_schema(responses={202: PeeringOut},
                   description="Starts removing the peering (routes, security-group rules, the peering itself): "
                               "202 with status `deleting`. Deleting again changes nothing.")
    def destroy(self, request: Request, pk: str) -> Response:
        return _accepted(services.peering_delete(principal=self.principal, peering=self.get_object()))

    @extend_schema(request=None, responses={202: PeeringOut},
                   description="Requests a `failed` peering again, with the same networks: 202 with status "
                               "`pending`. 409 unless it is failed; 400 when another peering took its CIDR since.")
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str) -> Response:
        return _accepted(services.peering_retry(principal=self.principal, peering=self.get_object()))

    @extend_schema(responses=PeeringEventOut(many=True))
    @action(detail=True, methods=["get"], pagination_class=EventPagination)
    def events(self, request: Request, pk: str) -> Response:
        peering = self.get_object()
        page = self.paginate_queryset(selectors.peering_event_list(principal=self.principal, peering=peering))
        return self.get_paginated_response(PeeringEventOut(page, many=True).data)
