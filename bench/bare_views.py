"""The baseline of the API benchmarks: bare Django views that read the same 50 rows as
``GET /api/v1/projects?limit=50`` and ``GET /api/v1/deployments?limit=50`` (same ordering, same fields) with
``.values()`` and answer ``JsonResponse({"results": rows, "next": None})``: no authentication, throttling,
tenancy, pagination or serializer. One organization's rows, fixed when the URL patterns are made.

``run.py`` puts them in front of the real URLconf in its own process; ``load.py`` does the same inside gunicorn
through ``load_urls.py``.
"""

from __future__ import annotations


def bare_urlpatterns(organization_id: str) -> list:
    """``bare/projects`` and ``bare/deployments`` for the organization's rows."""
    from django.db.models import F
    from django.http import JsonResponse
    from django.urls import path

    from deployments.models import Deployment
    from projects.models import Project

    def bare_projects(request):
        rows = list(Project.objects.filter(organization_id=organization_id).order_by("-created_at", "-id")
                    .values("id", "name", "description", "created_at", "updated_at")[:50])
        return JsonResponse({"results": rows, "next": None})

    def bare_deployments(request):
        rows = list(
            Deployment.objects.filter(organization_id=organization_id).exclude(status="deleted")
            .order_by("-created_at", "-id")
            .values("id", "project_id", "name", "tier", "spec_id", "target_spec_id", "region_id", "status",
                    "status_reason", "endpoints", "deletion_protection", "created_at", "updated_at",
                    "status_changed_at", fingerprint=F("server_certificate__fingerprint_sha256"),
                    not_after=F("server_certificate__not_after"))[:50])
        for row in rows:
            row["tls"] = {"fingerprint_sha256": row.pop("fingerprint"), "not_after": row.pop("not_after"),
                          "ca_pem_url": f"/api/v1/deployments/{row['id']}/ca.pem"}
        return JsonResponse({"results": rows, "next": None})

    return [path("bare/projects", bare_projects), path("bare/deployments", bare_deployments)]
