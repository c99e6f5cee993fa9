"""The base of every viewset whose object is a deployment: ``/deployments/{id}`` and the routes other apps add
under it (``/deployments/{id}/metrics`` in alerts, ``/deployments/{id}/subscription`` in billing).

Each app registers its own viewset on the ``deployments`` prefix; deriving from this one resolves and scopes
the deployment exactly as the deployment viewset does (same selector, same filters), so ``get_object()`` is
the deployment the caller may see, and a stranger's is a 404. Reached from other apps through
``deployments.facade``.
"""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet

from deployments import selectors
from deployments.api.serializers import DeploymentOut
from deployments.models import Deployment, DeploymentStatus, Tier
from projects.api.base import OrganizationScopedViewSet
from projects.tenancy import Principal


class DeploymentFilter(django_filters.FilterSet):
    project = django_filters.CharFilter(field_name="project_id")
    status = django_filters.ChoiceFilter(choices=DeploymentStatus.choices)
    tier = django_filters.ChoiceFilter(choices=Tier.choices)
    region = django_filters.CharFilter(field_name="region_id")

    class Meta:
        model = Deployment
        fields = ["project", "status", "tier", "region"]


class DeploymentScopedViewSet(OrganizationScopedViewSet):
    """Its object is one of the deployments the principal may see (deleted ones are gone)."""

    filterset_class = DeploymentFilter
    # The deployment: what ``OPTIONS`` describes on any route of it (each action declares its own schema).
    serializer_class = DeploymentOut

    def scoped_queryset(self, principal: Principal) -> QuerySet:
        return selectors.deployment_list(principal=principal)
