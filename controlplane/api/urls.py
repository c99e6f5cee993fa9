"""Everything under /api/v1."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from controlplane.api.problems import api_not_found

urlpatterns = [
    path("schema", SpectacularAPIView.as_view(), name="schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("", include("projects.api.urls")),
    path("", include("deployments.api.urls")),
    # billing and alerts add their own routes under deployments/{id}/ (subscription, metrics) on the deployments
    # prefix; every router route is anchored at both ends, so deployments/{id} does not swallow them.
    path("", include("billing.api.urls")),
    path("", include("alerts.api.urls")),
    # Anything else under /api/v1 is a problem+json 404, in DEBUG too (not Django's HTML page).
    re_path(r"^[\s\S]*$", api_not_found, name="not-found"),  # [\s\S], not ".": a newline in the path too
]
