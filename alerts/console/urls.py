"""Alerts pages of the console; composed by ``controlplane.console_urls`` under its ``console`` namespace."""

from django.urls import path

from alerts.console import views

urlpatterns = [
    path("alerts", views.IncidentListView.as_view(), name="alerts"),
    path("alerts/deliveries", views.DeliveryListView.as_view(), name="alert-deliveries"),
    path("alerts/channels", views.ChannelListView.as_view(), name="alert-channels"),
    path("alerts/channels/new", views.ChannelCreateView.as_view(), name="alert-channel-create"),
    path("alerts/channels/<str:channel_id>", views.ChannelEditView.as_view(), name="alert-channel-edit"),
    path("alerts/channels/<str:channel_id>/delete", views.ChannelDeleteView.as_view(), name="alert-channel-delete"),
    path("alerts/channels/<str:channel_id>/enable", views.ChannelEnableView.as_view(), name="alert-channel-enable"),
    path("alerts/channels/<str:channel_id>/test", views.ChannelTestView.as_view(), name="alert-channel-test"),
    path("alerts/rules", views.RuleListView.as_view(), name="alert-rules"),
    path("alerts/rules/new", views.RuleCreateView.as_view(), name="alert-rule-create"),
    path("alerts/rules/<str:rule_id>", views.RuleEditView.as_view(), name="alert-rule-edit"),
    path("alerts/rules/<str:rule_id>/delete", views.RuleDeleteView.as_view(), name="alert-rule-delete"),
    path("deployments/<str:deployment_id>/metrics-card", views.DeploymentMetricsCardView.as_view(),
         name="deployment-metrics-card"),
]
