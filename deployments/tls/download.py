"""The ca.pem download, one response for the API and the console."""

from __future__ import annotations

from django.http import HttpResponse

from controlplane import errors
from deployments.models import Deployment
from deployments.tls.selectors import ca_bundle_pem

PEM_MEDIA_TYPE = "application/x-pem-file"


def ca_pem_response(deployment: Deployment) -> HttpResponse:
    """The region's CA certificates (two during a rotation) as an attachment; 404 before the region has a CA."""
    bundle = ca_bundle_pem(region_id=deployment.region_id)
    if not bundle:
        raise errors.NotFound(f"The deployment {deployment.id} has no certificate authority yet.")
    response = HttpResponse(bundle, content_type=PEM_MEDIA_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{deployment.id}-ca.pem"'
    return response
