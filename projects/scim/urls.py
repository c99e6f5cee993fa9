from django.urls import path, re_path

from projects.scim import views

_ID = "<str:resource_id>"
urlpatterns = [
    path("ServiceProviderConfig", views.ServiceProviderConfigView.as_view(), name="scim-service-provider-config"),
    path("ResourceTypes", views.ResourceTypesView.as_view(), name="scim-resource-types"),
    path("ResourceTypes/<str:name>", views.ResourceTypesView.as_view(), name="scim-resource-type"),
    path("Schemas", views.SchemasView.as_view(), name="scim-schemas"),
    path("Schemas/<str:name>", views.SchemasView.as_view(), name="scim-schema"),
    path(".search", views.RootSearchView.as_view(), name="scim-search"),
    path("Users", views.UsersView.as_view(), name="scim-users"),
    path(f"Users/{_ID}", views.UsersView.as_view(), name="scim-user"),
    path("Groups", views.GroupsView.as_view(), name="scim-groups"),
    path(f"Groups/{_ID}", views.GroupsView.as_view(), name="scim-group"),
    # Anything else under /scim/v2/ is a SCIM 404, not the console's HTML page.
    re_path(r"^.*$", views.NotFoundView.as_view(), name="scim-not-found"),
]
