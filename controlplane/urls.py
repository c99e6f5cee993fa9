from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from controlplane import health
from controlplane.admin import OutboxOpsView
from controlplane.api import problems
from projects.admin import OpsPasswordChangeView

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("api/v1/", include(("controlplane.api.urls", "api"), namespace="api")),
    path("ops/outbox/", OutboxOpsView.as_ops_view(), name="ops-outbox"),
    # Ahead of the admin's own page: the ops password change goes through the console's counted service.
    path("ops/password_change/", admin.site.admin_view(OpsPasswordChangeView.as_view()), name="ops-password-change"),
    path("ops/", admin.site.urls),
    path("console/", include(("projects.console.urls", "console"), namespace="console")),
    path("", RedirectView.as_view(pattern_name="console:home", permanent=False)),
]


def handler404(request, exception=None):
    if request.path.startswith("/api/"):
        return problems.api_not_found(request, exception)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request):
    if request.path.startswith("/api/"):
        return problems.api_server_error(request)
    from django.views.defaults import server_error

    return server_error(request)
