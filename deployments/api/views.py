from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from rest_framework import mixins

from controlplane.api.pagination import CursorLimitPagination
from deployments import selectors
from deployments.api import serializers as s
from deployments.models import Provider, Region, Spec, Tier
from projects.api.base import OrganizationScopedViewSet
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
