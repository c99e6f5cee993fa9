"""``/operations``: every asynchronous request followed to its end (issue 18). The 202 of each async endpoint
carries ``Location: /api/v1/operations/op_…`` and the operation's id in its body."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from deployments.models import Operation, OperationStatus, OperationType
from deployments.operations import selectors, services
from projects.api.base import OrganizationScopedViewSet
from projects.roles import Perm
from projects.tenancy import Principal

OPERATION_PATH = "/api/v1/operations/"


class OperationStepOut(serializers.Serializer):
    name = serializers.CharField()
    status = serializers.CharField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    cancellable = serializers.BooleanField()


class OperationOut(serializers.ModelSerializer):
    steps = OperationStepOut(many=True)
    deployment = serializers.CharField(source="deployment_id", allow_null=True)
    project = serializers.CharField(source="project_id", allow_null=True)
    peering = serializers.CharField(source="peering_id", allow_null=True)

    class Meta:
        model = Operation
        fields = ["id", "type", "status", "deployment", "project", "peering", "steps", "current_step", "error",
                  "requested_by", "created_at", "started_at", "finished_at"]


class OperationFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=OperationStatus.choices)
    type = django_filters.ChoiceFilter(choices=OperationType.choices)
    deployment = django_filters.CharFilter(field_name="deployment_id")

    class Meta:
        model = Operation
        fields = ["status", "type", "deployment"]


def accepted(body: dict, operation: Operation | None) -> Response:
    """The 202 of an async request: its body plus the operation's id, and ``Location`` to poll."""
    if operation is None:
        return Response(body, status=status.HTTP_202_ACCEPTED)
    return Response({**body, "operation": operation.id}, status=status.HTTP_202_ACCEPTED,
                    headers={"Location": OPERATION_PATH + operation.id})


class OperationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    """Asynchronous operations: `pending` → `running` → `succeeded` | `failed` | `cancelled`, with their steps.
    Poll the `Location` of any 202 until the status is terminal."""

    permission_by_action = {"cancel": Perm.DEPLOYMENTS_WRITE}
    serializer_class = OperationOut
    filterset_class = OperationFilter
    lookup_value_regex = "op_[a-z0-9]+"
    http_method_names = ["get", "post", "head", "options"]

    def scoped_queryset(self, principal: Principal) -> QuerySet:
        return selectors.operation_list(principal=principal)

    @extend_schema(request=None, responses={200: OperationOut},
                   description="Cancels the operation when its current step allows it (a create still `pending`: "
                               "the deployment is never provisioned and is deleted); 409 otherwise.")
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        operation = services.operation_cancel(principal=self.principal, operation=self.get_object())
        return Response(OperationOut(operation).data)
