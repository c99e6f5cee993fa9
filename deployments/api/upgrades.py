"""API of EMQX version upgrades: ``GET /deployments/{id}/upgrades`` (the valid targets), ``POST
/deployments/{id}/upgrade`` (202, the upgrade scheduled) and ``GET /deployments/{id}/upgrade`` (the latest
upgrade); the POST's 202 carries ``operation`` and ``Location: /api/v1/operations/op_…``, the Operation that
follows the upgrade step by step). A viewset of its own on the ``deployments`` prefix, so the
deployment is looked up, scoped and permission-checked by the tenancy base like every other route."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.api.serializers import InputSerializer
from deployments.api.base import DeploymentScopedViewSet
from deployments.api.operations import accepted
from deployments.models import Operation
from deployments.upgrades import selectors, services
from deployments.upgrades.models import BrokerVersion, DeploymentUpgrade, UpgradeWhen
from projects.roles import Perm


class UpgradeIn(InputSerializer):
    version = serializers.JSONField(help_text="A version of `GET /deployments/{id}/upgrades`, e.g. `5.9.1`.")
    when = serializers.JSONField(required=False, default=UpgradeWhen.NOW,
                                 help_text="`now` (default) or `next_window`: at the next occurrence of the "
                                           "deployment's maintenance window.")


class BrokerVersionOut(serializers.ModelSerializer):
    class Meta:
        model = BrokerVersion
        fields = ["version", "status", "end_of_support"]


class UpgradeOut(serializers.ModelSerializer):
    deployment = serializers.CharField(source="deployment_id", read_only=True)

    class Meta:
        model = DeploymentUpgrade
        fields = ["id", "deployment", "from_version", "to_version", "when", "scheduled_for", "status", "replicas",
                  "step", "error", "created_at", "updated_at", "finished_at"]
        read_only_fields = fields


class UpgradeAcceptedOut(UpgradeOut):
    operation = serializers.CharField(read_only=True, help_text="The operation (`op_…`) following the upgrade; "
                                                                "`Location` points at it.")

    class Meta(UpgradeOut.Meta):
        fields = [*UpgradeOut.Meta.fields, "operation"]
        read_only_fields = fields


class UpgradesOut(serializers.Serializer):
    current = serializers.CharField(help_text="The version the deployment runs.")
    current_status = serializers.CharField(allow_null=True, help_text="current, supported or deprecated.")
    end_of_support = serializers.DateField(allow_null=True, help_text="Of the version it runs, when deprecated.")
    results = BrokerVersionOut(many=True, help_text="Valid targets, oldest first: newer, not deprecated, and "
                                                    "never skipping a major version.")
    upgrade = UpgradeOut(allow_null=True, help_text="The latest upgrade, if any.")
    next = serializers.CharField(allow_null=True, help_text="Always null: the catalog has few versions.")


class DeploymentUpgradeViewSet(DeploymentScopedViewSet):
    """A deployment's EMQX version: its valid upgrade targets and the upgrade itself."""

    permission_by_action = {"upgrade_create": Perm.DEPLOYMENTS_WRITE}

    @extend_schema(responses=UpgradesOut, description="The version the deployment runs and the versions it may "
                                                      "be upgraded to.")
    @action(detail=True, methods=["get"], url_path="upgrades", pagination_class=None)
    def upgrades(self, request: Request, pk: str) -> Response:
        deployment = self.get_object()
        running = selectors.version_get(version=deployment.broker_version)
        body: dict[str, Any] = {
            "current": deployment.broker_version,
            "current_status": running.status if running else None,
            "end_of_support": running.end_of_support if running else None,
            "results": selectors.targets_of(deployment=deployment),
            "upgrade": selectors.latest_upgrade(deployment=deployment), "next": None,
        }
        return Response(UpgradesOut(body).data)

    @extend_schema(responses=UpgradeOut, description="The latest upgrade (404 if none): its status, the step it "
                                                     "is at and, when failed, why.")
    @action(detail=True, methods=["get"], url_path="upgrade")
    def upgrade(self, request: Request, pk: str) -> Response:
        return Response(UpgradeOut(selectors.latest_upgrade_get(deployment=self.get_object())).data)

    @extend_schema(request=UpgradeIn, responses={202: UpgradeAcceptedOut},
                   description="Upgrades the deployment's EMQX version, one node at a time (audited). 400 for an "
                               "unknown, older, deprecated or major-skipping version, or `next_window` without a "
                               "window; 409 unless the deployment is running with no upgrade open.")
    @upgrade.mapping.post
    def upgrade_create(self, request: Request, pk: str) -> Response:
        deployment = self.get_object()
        data = UpgradeIn(data=request.data)
        data.is_valid(raise_exception=True)
        version, when = data.validated_data["version"], data.validated_data["when"]
        upgrade = services.upgrade_request(principal=self.principal, deployment=deployment,
                                           version=str(version), when=str(when))
        operation = Operation.objects.filter(pk=upgrade.operation_id).first()
        return accepted(UpgradeOut(upgrade).data, operation)
