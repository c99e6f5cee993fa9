from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.api.pagination import CursorLimitPagination
from controlplane.api.serializers import ListRowsMixin
from deployments import http_auth, selectors, services
from deployments.api import serializers as s
from deployments.api.base import DeploymentScopedViewSet
from deployments.api.operations import accepted
from deployments.api.peering import DeploymentPeeringsMixin
from deployments.models import Provider, Region, Spec, Tier
from deployments.operations import selectors as operation_selectors
from deployments.tls.download import PEM_MEDIA_TYPE, ca_pem_response
from projects.api.base import OrganizationScopedViewSet
from projects.facade import projects_by_ids
from projects.roles import Perm
from projects.tenancy import Principal


class RegionFilter(django_filters.FilterSet):
    provider = django_filters.ChoiceFilter(choices=Provider.choices)
    tier = django_filters.ChoiceFilter(choices=Tier.choices, method="filter_tier")

    class Meta:
        model = Region
        fields = ["provider", "tier"]

    def filter_tier(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(id__in=[r.id for r in queryset if value in r.tiers])


class SpecFilter(django_filters.FilterSet):
    tier = django_filters.ChoiceFilter(choices=Tier.choices)

    class Meta:
        model = Spec
        fields = ["tier"]


class CatalogPagination(CursorLimitPagination):
    ordering = ("id",)


class EventPagination(CursorLimitPagination):
    ordering = ("created_at", "id")  # a lifecycle reads oldest first


class CatalogViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    """The catalog is shared by everyone, but what it shows depends on the caller's organization."""

    lookup_value_regex = "[a-z0-9-]+"
    pagination_class = CatalogPagination


class RegionViewSet(CatalogViewSet):
    serializer_class = s.RegionOut
    filterset_class = RegionFilter

    def scoped_queryset(self, principal: Principal) -> QuerySet:
        return selectors.region_list(site=principal.organization.site)


class SpecViewSet(CatalogViewSet):
    serializer_class = s.SpecOut
    filterset_class = SpecFilter

    def scoped_queryset(self, principal: Principal) -> QuerySet:
        return selectors.spec_list(flagship_enabled=principal.organization.flagship_enabled)

    def get_serializer_context(self) -> dict:
        context = super().get_serializer_context()
        principal = getattr(self, "principal", None)
        context["currency"] = principal.organization.currency if principal else "USD"
        return context


class PemRenderer(BaseRenderer):
    """Lets a client ask for ``application/x-pem-file`` (curl -H Accept:…); an error still goes out as JSON."""

    media_type = PEM_MEDIA_TYPE
    format = "pem"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if isinstance(data, str):
            return data.encode()
        return JSONRenderer().render(data)


# --- deployments ------------------------------------------------------------------------------------
# Other apps serve their routes under /deployments/{id}/ from their own viewsets derived from
# DeploymentScopedViewSet too (alerts.api.metrics, billing.api.views). The docstring is the schema's description.
class DeploymentViewSet(DeploymentPeeringsMixin, ListRowsMixin, mixins.RetrieveModelMixin,
                        DeploymentScopedViewSet):
    """Broker deployments. Lifecycle requests answer 202 with the deployment in its new state, plus `operation`
    (its id) and `Location: /api/v1/operations/op_…`; poll either."""

    permission_by_action = {action: Perm.DEPLOYMENTS_WRITE for action in
                            ("create", "partial_update", "destroy", "scale", "stop", "start", "retry",
                             "http_auth_put", "http_auth_delete", "http_auth_test")}
    serializer_class = s.DeploymentOut
    # PUT only for /http-auth (the deployment itself has no update action, so no PUT route).
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def scoped_queryset(self, principal: Principal) -> QuerySet:
        # The tls field: one join instead of a query per deployment; the key and certificate are not needed.
        return super().scoped_queryset(principal).select_related("server_certificate").defer(
            "server_certificate__private_key_pem", "server_certificate__certificate_pem")

    def _accepted(self, deployment) -> Response:
        # The operation the request started (or, deleting again, the delete under way): its Location to poll.
        operation = operation_selectors.operation_latest_for_deployment(principal=self.principal,
                                                                        deployment_id=deployment.id)
        return accepted(s.DeploymentOut(deployment).data, operation)

    @extend_schema(request=s.DeploymentIn, responses={202: s.DeploymentOut})
    def create(self, request: Request) -> Response:
        data = s.DeploymentIn(data=request.data)
        data.is_valid(raise_exception=True)
        org = self.principal.organization
        project = projects_by_ids(principal=self.principal, project_ids=[data.validated_data["project"]],
                                  field="project")[0]
        deployment = services.deployment_create(
            principal=self.principal,
            project=project,
            name=data.validated_data["name"],
            region=selectors.region_get(site=org.site, region_id=data.validated_data["region"]),
            spec=selectors.spec_get(flagship_enabled=org.flagship_enabled, spec_id=data.validated_data["spec"]),
        )
        return self._accepted(deployment)

    @extend_schema(request=s.DeploymentPatchIn, responses=s.DeploymentOut)
    def partial_update(self, request: Request, pk: str) -> Response:
        data = s.DeploymentPatchIn(data=request.data)
        data.is_valid(raise_exception=True)
        deployment = services.deployment_update(principal=self.principal, deployment=self.get_object(),
                                                **data.validated_data)
        return Response(s.DeploymentOut(deployment).data)

    @extend_schema(responses={202: s.DeploymentOut},
                   description="Starts deleting (status `deleting`); the deployment disappears once gone. "
                               "409 while deletion protection is on. Deleting again changes nothing.")
    def destroy(self, request: Request, pk: str) -> Response:
        return self._accepted(services.deployment_delete(principal=self.principal, deployment=self.get_object()))

    @extend_schema(request=s.DeploymentScaleIn, responses={202: s.DeploymentOut})
    @action(detail=True, methods=["post"])
    def scale(self, request: Request, pk: str) -> Response:
        deployment = self.get_object()  # a stranger's deployment is 404 whatever the body
        data = s.DeploymentScaleIn(data=request.data)
        data.is_valid(raise_exception=True)
        spec = selectors.spec_get(flagship_enabled=self.principal.organization.flagship_enabled,
                                  spec_id=data.validated_data["spec"])
        return self._accepted(services.deployment_scale(principal=self.principal, deployment=deployment, spec=spec))

    @extend_schema(request=None, responses={202: s.DeploymentOut})
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, pk: str) -> Response:
        return self._accepted(services.deployment_stop(principal=self.principal, deployment=self.get_object()))

    @extend_schema(request=None, responses={202: s.DeploymentOut})
    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk: str) -> Response:
        return self._accepted(services.deployment_start(principal=self.principal, deployment=self.get_object()))

    @extend_schema(request=None, responses={202: s.DeploymentOut},
                   description="Retry the operation that failed.")
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str) -> Response:
        return self._accepted(services.deployment_retry(principal=self.principal, deployment=self.get_object()))

    @extend_schema(responses=s.DeploymentEventOut(many=True))
    @action(detail=True, methods=["get"], pagination_class=EventPagination)
    def events(self, request: Request, pk: str) -> Response:
        deployment = self.get_object()
        events = selectors.deployment_event_list(principal=self.principal, deployment=deployment)
        page = self.paginate_queryset(events)
        return self.get_paginated_response(s.DeploymentEventOut(page, many=True).data)

    @extend_schema(responses={(200, PemRenderer.media_type): OpenApiTypes.STR,
                              404: OpenApiResponse(description="No such deployment, or no CA in its region yet.")},
                   description="The CA certificates (PEM) that sign the deployment's TLS server certificate "
                               "(`mqtts`, `wss`): verify the broker against them. During a CA rotation there "
                               "are two; trust both.")
    @action(detail=True, methods=["get"], url_path="ca.pem", url_name="ca-pem",
            renderer_classes=[JSONRenderer, PemRenderer])
    def ca_pem(self, request: Request, pk: str) -> HttpResponse:
        return ca_pem_response(self.get_object())

    # --- custom HTTP authentication ---------------------------------------------------------------
    @extend_schema(responses=s.HttpAuthOut, description="The HTTP authentication/ACL configuration; header "
                   "values are write-only (names only). `applied` tells whether the cluster runs it. 404 when "
                   "none is configured.")
    @action(detail=True, methods=["get"], url_path="http-auth")
    def http_auth(self, request: Request, pk: str) -> Response:
        config = selectors.http_auth_get(principal=self.principal, deployment=self.get_object())
        return Response(s.http_auth_out(config))

    @extend_schema(request=s.HttpAuthIn, responses=s.HttpAuthOut,
                   description="Replaces the whole configuration (header values included: a header left out is "
                               "removed). The broker nodes restart one at a time to load it.")
    @http_auth.mapping.put
    def http_auth_put(self, request: Request, pk: str) -> Response:
        deployment = self.get_object()
        data = s.HttpAuthIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        config = http_auth.http_auth_put(
            principal=self.principal, deployment=deployment, enabled=values["enabled"],
            authentication=_request_spec(values["authentication"]),
            authorization=_request_spec(values["authorization"]) if values.get("authorization") else None,
        )
        return Response(s.http_auth_out(config))

    @extend_schema(request=None, responses={204: None})
    @http_auth.mapping.delete
    def http_auth_delete(self, request: Request, pk: str) -> Response:
        http_auth.http_auth_delete(principal=self.principal, deployment=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=s.HttpAuthTestIn, responses=s.HttpAuthTestOut,
                   description="Sends the configured request built from these sample values, exactly as the "
                               "broker would, and reports what the broker would decide. Public addresses only: "
                               "a URL inside one of the deployment's VPC peerings is answered 409 (the control "
                               "plane does not send into the customer's network; test with an MQTT client).")
    @action(detail=True, methods=["post"], url_path="http-auth/test")
    def http_auth_test(self, request: Request, pk: str) -> Response:
        deployment = self.get_object()
        data = s.HttpAuthTestIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        kind = values.pop("kind")
        result = http_auth.http_auth_test(principal=self.principal, deployment=deployment, kind=kind,
                                          sample=values)
        return Response(s.HttpAuthTestOut(result.as_dict()).data)


def _request_spec(values: dict) -> http_auth.HttpRequestSpec:
    return http_auth.HttpRequestSpec(method=values["method"], url=values["url"], headers=dict(values["headers"]),
                                     params=dict(values["params"]), timeout_ms=values["timeout_ms"])
