"""Alert channels, rules, incidents and the delivery log. Thin views: services apply the rules."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from alerts import selectors
from alerts.api import serializers as s
from alerts.models import (
    Alert,
    AlertChannel,
    AlertRule,
    AlertState,
    ChannelType,
    Notification,
    NotificationKind,
    NotificationStatus,
)
from alerts.services import channels as channel_services
from alerts.services import rules as rule_services
from controlplane.api.pagination import CursorLimitPagination
from projects.api.base import OrganizationScopedViewSet
from projects.roles import Perm
from projects.tenancy import Principal

WRITE = Perm.DEPLOYMENTS_WRITE


class ChannelFilter(django_filters.FilterSet):
    type = django_filters.ChoiceFilter(choices=ChannelType.choices)

    class Meta:
        model = AlertChannel
        fields = ["type"]


class AlertChannelViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    """Where alert notifications go: email, PagerDuty (Events API v2) or a signed webhook."""

    # The role is checked here; the service also refuses a principal limited to projects.
    permission_by_action = {"create": channel_services.CHANNEL_PERM, "partial_update": channel_services.CHANNEL_PERM,
                            "destroy": channel_services.CHANNEL_PERM, "test": channel_services.CHANNEL_PERM}
    serializer_class = s.ChannelOut
    filterset_class = ChannelFilter
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def scoped_queryset(self, principal: Principal) -> QuerySet:
        return selectors.channel_list(principal=principal, with_last_delivery=True)

    def get_serializer_context(self) -> dict:
        principal = getattr(self, "principal", None)
        return {**super().get_serializer_context(),
                "show_webhook_urls": principal is not None and channel_services.channel_can_manage(principal)}

    @extend_schema(request=s.ChannelIn, responses={201: s.ChannelOut},
                   description="400 for invalid emails, routing keys, or a webhook URL that is not allowed (private, "
                               "loopback, link-local or metadata addresses). A webhook created without a secret gets "
                               "a generated `whsec_…` one, shown in this response only.")
    def create(self, request: Request) -> Response:
        data = s.ChannelIn(data=request.data)
        data.is_valid(raise_exception=True)
        channel, generated = channel_services.channel_create(principal=self.principal, **data.validated_data)
        body = s.ChannelOut(channel, context=self.get_serializer_context()).data
        if generated:
            body["config"].update(generated)
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.ChannelPatchIn, responses=s.ChannelOut)
    def partial_update(self, request: Request, pk: str) -> Response:
        channel = self.get_object()
        data = s.ChannelPatchIn(data=request.data)
        data.is_valid(raise_exception=True)
        channel = channel_services.channel_update(principal=self.principal, channel=channel, **data.validated_data)
        return Response(s.ChannelOut(channel, context=self.get_serializer_context()).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        channel_services.channel_delete(principal=self.principal, channel=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=s.ChannelTestOut,
                   description="Sends a clearly marked test notification now and reports the outcome. Like every "
                               "change of a channel, for owners and admins not limited to projects.")
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str) -> Response:
        notification, result = channel_services.channel_test(principal=self.principal, channel=self.get_object())
        return Response(s.ChannelTestOut({"delivered": result.delivered, "status_code": result.status_code,
                                          "error": result.error or None, "latency_ms": result.latency_ms,
                                          "delivery": notification.id}).data)


class RuleFilter(django_filters.FilterSet):
    project = django_filters.CharFilter(field_name="project_id")
    deployment = django_filters.CharFilter(field_name="deployment_id")
    enabled = django_filters.BooleanFilter()

    class Meta:
        model = AlertRule
        fields = ["project", "deployment", "enabled"]


class AlertRuleViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    """Threshold rules on a project's (or one deployment's) metrics."""

    permission_by_action = {"create": WRITE, "partial_update": WRITE, "destroy": WRITE}
    serializer_class = s.RuleOut
    filterset_class = RuleFilter
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def scoped_queryset(self, principal: Principal) -> QuerySet:
        return selectors.rule_list(principal=principal)

    @extend_schema(request=s.RuleIn, responses={201: s.RuleOut})
    def create(self, request: Request) -> Response:
        data = s.RuleIn(data=request.data)
        data.is_valid(raise_exception=True)
        rule = rule_services.rule_create(principal=self.principal, **data.validated_data)
        return Response(s.RuleOut(rule).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.RulePatchIn, responses=s.RuleOut)
    def partial_update(self, request: Request, pk: str) -> Response:
        rule = self.get_object()
        data = s.RulePatchIn(data=request.data)
        data.is_valid(raise_exception=True)
        rule = rule_services.rule_update(principal=self.principal, rule=rule, **data.validated_data)
        return Response(s.RuleOut(rule).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        rule_services.rule_delete(principal=self.principal, rule=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class AlertFilter(django_filters.FilterSet):
    rule = django_filters.CharFilter(field_name="rule_id")
    deployment = django_filters.CharFilter(field_name="deployment_id")
    state = django_filters.ChoiceFilter(choices=AlertState.choices)

    class Meta:
        model = Alert
        fields = ["rule", "deployment", "state"]


class AlertPagination(CursorLimitPagination):
    ordering = ("-started_at", "-id")


class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    """Incidents: a rule's condition holding on a deployment (`firing`) until it clears (`resolved`)."""

    serializer_class = s.AlertOut
    filterset_class = AlertFilter
    pagination_class = AlertPagination

    def scoped_queryset(self, principal: Principal) -> QuerySet:
        return selectors.alert_list(principal=principal)


class NotificationFilter(django_filters.FilterSet):
    channel = django_filters.CharFilter(field_name="channel_id")
    alert = django_filters.CharFilter(field_name="alert_id")
    kind = django_filters.ChoiceFilter(choices=NotificationKind.choices)
    status = django_filters.ChoiceFilter(choices=NotificationStatus.choices)

    class Meta:
        model = Notification
        fields = ["channel", "alert", "kind", "status"]


class NotificationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    """The delivery log: every notification, its attempts and outcome."""

    serializer_class = s.NotificationOut
    filterset_class = NotificationFilter

    def scoped_queryset(self, principal: Principal) -> QuerySet:
        return selectors.notification_list(principal=principal)
