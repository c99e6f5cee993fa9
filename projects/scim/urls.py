from django.urls import path

from projects.scim import views

_ID = "<str:resource_id>"
urlpatterns = [
    path("ServiceProviderConfig", views.ServiceProviderConfigView.as_view(), name="scim-service-provider-config"),
    path("ResourceTypes", views.ResourceTypesView.as_view(), name="scim-resource-types"),
    path("ResourceTypes/<str:name>", views.ResourceTypesView.as_view(), name="scim-resource-type"),
    path("Schemas", views.SchemasView.as_view(), name="scim-schemas"),
    path("Schemas/<str:name>", views.SchemasView.as_view(), name="scim-schema"),
    path("Users", views.UsersView.as_view(), name="scim-users"),
    path(f"Users/{_ID}", views.UsersView.as_view(), name="scim-user"),
    path("Groups", views.GroupsView.as_view(), name="scim-groups"),
    path(f"Groups/{_ID}", views.GroupsView.as_view(), name="scim-group"),
]
