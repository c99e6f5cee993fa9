from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from controlplane.api.serializers import InputSerializer
from deployments import selectors
from deployments.models import Deployment, DeploymentEvent, Region, Spec


class RegionOut(serializers.ModelSerializer):
    tiers = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = Region
        fields = ["id", "provider", "code", "name", "tiers"]
        read_only_fields = fields


class SpecPricesOut(serializers.Serializer):
    hourly = serializers.DecimalField(max_digits=12, decimal_places=4)
    annual = serializers.DecimalField(max_digits=14, decimal_places=2)
    currency = serializers.CharField()
    annual_saving_pct = serializers.DecimalField(max_digits=5, decimal_places=1,
                                                 help_text="Saving of annual against 8,760 hours at the hourly price.")


class SpecOut(serializers.ModelSerializer):
    prices = serializers.SerializerMethodField()

    class Meta:
        model = Spec
        fields = ["id", "tier", "name", "max_connections", "max_messages_per_second", "replicas", "cpu_millicores",
                  "memory_mib", "prices"]
        read_only_fields = fields

    @extend_schema_field(SpecPricesOut(allow_null=True))
    def get_prices(self, obj: Spec) -> dict | None:
        prices = selectors.spec_prices(spec=obj, currency=self.context["currency"])
        return None if prices is None else SpecPricesOut(prices).data


# --- deployments ------------------------------------------------------------------------------------


class EndpointsOut(serializers.Serializer):
    mqtt = serializers.CharField(required=False)
    mqtts = serializers.CharField(required=False)
    ws = serializers.CharField(required=False)
    wss = serializers.CharField(required=False)


class DeploymentOut(serializers.ModelSerializer):
    project = serializers.CharField(source="project_id", read_only=True)
    region = serializers.CharField(source="region_id", read_only=True)
    spec = serializers.CharField(source="spec_id", read_only=True)
    target_spec = serializers.CharField(source="target_spec_id", read_only=True,
                                        help_text="While scaling, the spec being rolled out.")
    endpoints = EndpointsOut(read_only=True)

    class Meta:
        model = Deployment
        fields = ["id", "project", "name", "tier", "spec", "target_spec", "region", "status", "status_reason",
                  "endpoints", "deletion_protection", "created_at", "updated_at", "status_changed_at"]
        read_only_fields = fields


class DeploymentEventOut(serializers.ModelSerializer):
    spec = serializers.CharField(source="spec_id", read_only=True)

    class Meta:
        model = DeploymentEvent
        fields = ["id", "from_status", "to_status", "spec", "reason", "actor_label", "details", "created_at"]
        read_only_fields = fields


class DeploymentIn(InputSerializer):
    project = serializers.RegexField(r"^prj_[a-z0-9]{1,28}$", max_length=32)
    name = serializers.CharField(max_length=40)
    region = serializers.CharField(max_length=64)
    spec = serializers.CharField(max_length=64)


class DeploymentPatchIn(InputSerializer):
    name = serializers.CharField(max_length=40, required=False)
    deletion_protection = serializers.BooleanField(required=False)


class DeploymentScaleIn(InputSerializer):
    spec = serializers.CharField(max_length=64)


class EmptyIn(InputSerializer):
    pass

