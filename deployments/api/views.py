from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.api.pagination import CursorLimitPagination
from deployments import selectors, services
from deployments.api import serializers as s
from deployments.models import Deployment, DeploymentStatus, Provider, Region, Spec, Tier
from projects.api.base import OrganizationScopedViewSet
from projects.roles import Perm
from projects.selectors import projects_by_ids
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


# --- deployments ------------------------------------------------------------------------------------
class DeploymentFilter(django_filters.FilterSet):
    project = django_filters.CharFilter(field_name="project_id")
    status = django_filters.ChoiceFilter(choices=DeploymentStatus.choices)
    tier = django_filters.ChoiceFilter(choices=Tier.choices)
    region = django_filters.CharFilter(field_name="region_id")

    class Meta:
        model = Deployment
        fields = ["project", "status", "tier", "region"]


class DeploymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    """Broker deployments. Lifecycle requests answer 202 with the deployment in its new state; poll it."""

    permission_by_action = {action: Perm.DEPLOYMENTS_WRITE for action in
                            ("create", "partial_update", "destroy", "scale", "stop", "start", "retry")}
    serializer_class = s.DeploymentOut
    filterset_class = DeploymentFilter
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def scoped_queryset(self, principal: Principal) -> QuerySet:
        return selectors.deployment_list(principal=principal)

    def _accepted(self, deployment) -> Response:
        return Response(s.DeploymentOut(deployment).data, status=status.HTTP_202_ACCEPTED)

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
