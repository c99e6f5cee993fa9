from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from controlplane import error_pages, health
from controlplane.admin import OutboxOpsView
from ops.metrics import metrics_view
from projects.admin import OpsPasswordChangeView

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    # Prometheus scrapes with METRICS_SCRAPE_TOKEN (ops/metrics.py); outside /api/v1 and its schema.
    path("metrics", metrics_view, name="metrics"),
    path("api/v1/", include(("controlplane.api.urls", "api"), namespace="api")),
    # SCIM 2.0 provisioning: its own token and error format (projects/scim/), outside /api/v1 and its schema.
    path("scim/v2/", include("projects.scim.urls")),
    path("ops/outbox/", OutboxOpsView.as_ops_view(), name="ops-outbox"),
    path("ops/", include("ops.urls")),
    # Ahead of the admin's own page: the ops password change goes through the console's counted service.
    path("ops/password_change/", admin.site.admin_view(OpsPasswordChangeView.as_view()), name="ops-password-change"),
    path("ops/", admin.site.urls),
    path("console/", include(("controlplane.console_urls", "console"), namespace="console")),
    path("", RedirectView.as_view(pattern_name="console:home", permanent=False)),
]

# Problem+json under /api/, the console's error page elsewhere (controlplane/error_pages.py).
handler400 = error_pages.bad_request
handler403 = error_pages.permission_denied
handler404 = error_pages.page_not_found
handler500 = error_pages.server_error
