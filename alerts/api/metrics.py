"""``GET /deployments/{id}/metrics``: alerts' own viewset on the ``deployments`` prefix (``alerts.api.urls``),
derived from ``deployments.facade.DeploymentScopedViewSet`` so the deployment is resolved and scoped as
``/deployments/{id}`` does."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from alerts import selectors
from alerts.models import PUBLIC_METRICS
from controlplane.api.serializers import InputSerializer
from deployments.facade import DeploymentScopedViewSet

MAX_POINTS = 2000


class MetricsQueryIn(InputSerializer):
    metric = serializers.ChoiceField(choices=PUBLIC_METRICS, required=False)
    since = serializers.DateTimeField(required=False, help_text="RFC 3339; default one hour ago.")
    until = serializers.DateTimeField(required=False, help_text="RFC 3339; default now.")
    step = serializers.IntegerField(required=False, min_value=10, max_value=86400, default=60,
                                    help_text="Bucket width in seconds (averages per bucket).")

    def validate(self, attrs: dict) -> dict:
        attrs = super().validate(attrs)
        now = timezone.now()
        attrs.setdefault("until", now)
        attrs.setdefault("since", attrs["until"] - timedelta(hours=1))
        if attrs["since"] >= attrs["until"]:
            raise serializers.ValidationError({"since": ["Must be before until."]})
        span = (attrs["until"] - attrs["since"]).total_seconds()
        if span / attrs["step"] > MAX_POINTS:
            raise serializers.ValidationError({"step": [f"Too small for the range: at most {MAX_POINTS} points."]})
        return attrs


class MetricsCurrentOut(serializers.Serializer):
    deployment = serializers.CharField()
    at = serializers.DateTimeField(allow_null=True, help_text="When the latest values were scraped.")
    metrics = serializers.DictField(child=serializers.FloatField(allow_null=True),
                                    help_text=f"One value per metric: {', '.join(PUBLIC_METRICS)}.")


class MetricPointOut(serializers.Serializer):
    at = serializers.DateTimeField(help_text="Start of the bucket.")
    value = serializers.FloatField(help_text="Average over the bucket.")
    samples = serializers.IntegerField()


class MetricSeriesOut(serializers.Serializer):
    deployment = serializers.CharField()
    metric = serializers.ChoiceField(choices=PUBLIC_METRICS)
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    step = serializers.IntegerField()
    points = MetricPointOut(many=True)


class DeploymentMetricsViewSet(DeploymentScopedViewSet):
    """The deployment's broker metrics, under ``/deployments/{id}/``."""

    @extend_schema(
        methods=["GET"], request=None, responses={200: PolymorphicProxySerializer(
            component_name="DeploymentMetrics", serializers=[MetricsCurrentOut, MetricSeriesOut],
            resource_type_field_name=None)},
        parameters=[
            OpenApiParameter("metric", str, enum=list(PUBLIC_METRICS), required=False,
                             description="Without it: the current value of every metric."),
            OpenApiParameter("since", str, required=False, description="RFC 3339; default one hour ago."),
            OpenApiParameter("until", str, required=False, description="RFC 3339; default now."),
            OpenApiParameter("step", int, required=False, description="Bucket width in seconds (default 60)."),
        ],
        description="The deployment's broker metrics: current values, or with `metric` a time series of averages "
                    "per `step` seconds. 400 for an unknown metric name.")
    @action(detail=True, methods=["get"], url_path="metrics")
    def metrics(self, request: Request, pk: str) -> Response:
        deployment = self.get_object()
        query = MetricsQueryIn(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        params = query.validated_data
        if "metric" not in params:
            return Response(MetricsCurrentOut(selectors.metrics_current(deployment=deployment)).data)
        points = selectors.metric_series(deployment=deployment, metric=params["metric"], since=params["since"],
                                         until=params["until"], step_s=params["step"])
        return Response(MetricSeriesOut({"deployment": deployment.id, "metric": params["metric"],
                                         "since": params["since"], "until": params["until"],
                                         "step": params["step"], "points": points}).data)
