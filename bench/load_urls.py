"""URLconf of the gunicorn that ``load.py`` measures: ``bare/projects`` and ``bare/deployments`` (bare_views.py)
for the organization in ``BENCH_BARE_ORGANIZATION_ID``, then every route of the product."""

import os

from bare_views import bare_urlpatterns
from django.urls import include, path

urlpatterns = [
    *bare_urlpatterns(os.environ["BENCH_BARE_ORGANIZATION_ID"]),
    path("", include("controlplane.urls")),
]
