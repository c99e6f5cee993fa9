"""Deployment pages of the console; composed by ``controlplane.console_urls`` under its ``console`` namespace."""

from django.urls import path

from deployments.console import access, acl, clients, confirmed, peering, views

urlpatterns = [
    path("deployments", views.DeploymentListView.as_view(), name="deployments"),
    path("deployments/new", views.DeploymentCreateView.as_view(), name="deployment-create"),
    path("deployments/<str:deployment_id>", views.DeploymentDetailView.as_view(), name="deployment-detail"),
    path("deployments/<str:deployment_id>/scale", confirmed.DeploymentScaleView.as_view(), name="deployment-scale"),
    path("deployments/<str:deployment_id>/stop", confirmed.DeploymentStopView.as_view(), name="deployment-stop"),
    path("deployments/<str:deployment_id>/start", views.DeploymentStartView.as_view(), name="deployment-start"),
    path("deployments/<str:deployment_id>/retry", views.DeploymentRetryView.as_view(), name="deployment-retry"),
    path("deployments/<str:deployment_id>/protection", views.DeploymentProtectionView.as_view(),
         name="deployment-protection"),
    path("deployments/<str:deployment_id>/ca.pem", views.DeploymentCaPemView.as_view(), name="deployment-ca-pem"),
    path("deployments/<str:deployment_id>/delete", views.DeploymentDeleteView.as_view(), name="deployment-delete"),
    path("deployments/<str:deployment_id>/peerings", peering.PeeringSectionView.as_view(),
         name="deployment-peerings"),
    path("deployments/<str:deployment_id>/peerings/new", peering.PeeringCreateView.as_view(), name="peering-create"),
    path("peerings/<str:peering_id>", peering.PeeringDetailView.as_view(), name="peering-detail"),
    path("peerings/<str:peering_id>/delete", peering.PeeringDeleteView.as_view(), name="peering-delete"),
    path("deployments/<str:deployment_id>/http-auth", views.HttpAuthView.as_view(), name="deployment-http-auth"),
    path("deployments/<str:deployment_id>/http-auth/test", views.HttpAuthTestView.as_view(),
         name="deployment-http-auth-test"),
    path("deployments/<str:deployment_id>/http-auth/delete", views.HttpAuthDeleteView.as_view(),
         name="deployment-http-auth-delete"),
    path("deployments/<str:deployment_id>/access/users", access.MqttUsersView.as_view(),
         name="deployment-mqtt-users"),
    path("deployments/<str:deployment_id>/access/users/import", access.MqttUsersImportView.as_view(),
         name="deployment-mqtt-users-import"),
    path("deployments/<str:deployment_id>/access/users/<str:user_id>/password", access.MqttUserPasswordView.as_view(),
         name="deployment-mqtt-user-password"),
    path("deployments/<str:deployment_id>/access/users/<str:user_id>/superuser",
         access.MqttUserSuperuserView.as_view(), name="deployment-mqtt-user-superuser"),
    path("deployments/<str:deployment_id>/access/users/<str:user_id>/delete", access.MqttUserDeleteView.as_view(),
         name="deployment-mqtt-user-delete"),
    path("deployments/<str:deployment_id>/access/acl", acl.AclView.as_view(), name="deployment-acl"),
    path("deployments/<str:deployment_id>/access/acl/check", acl.AclCheckView.as_view(), name="deployment-acl-check"),
    path("deployments/<str:deployment_id>/access/clients", clients.ClientsView.as_view(), name="deployment-clients"),
    path("deployments/<str:deployment_id>/access/clients/disconnect", clients.ClientDisconnectView.as_view(),
         name="deployment-client-disconnect"),
]
