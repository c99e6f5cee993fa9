"""Reads of the deployments' TLS material. The private keys are read only by provisioning (the Secret)."""

from __future__ import annotations

from datetime import datetime

from deployments.models import CertificateAuthority, Deployment, ServerCertificate
from deployments.models import CertificateAuthorityStatus as CA


def ca_bundle_pem(*, region_id: str) -> str:
    """The CAs a client of the region's deployments should trust, concatenated: the active one, and during a
    rotation the retiring one too (certificates it signed are still being served). Empty before any exists."""
    authorities = CertificateAuthority.objects.filter(region_id=region_id, status__in=[CA.ACTIVE, CA.RETIRING]).defer(
        "private_key_pem")
    # Active first, then newest: a stable order, so the Secret does not change (and pods roll) for nothing.
    ordered = sorted(authorities, key=lambda a: (a.status != CA.ACTIVE, -a.not_before.timestamp()))
    return "".join(a.certificate_pem for a in ordered)


def server_certificate_of(deployment: Deployment) -> ServerCertificate | None:
    return server_certificates_of(deployment_ids=[deployment.id]).get(deployment.id)


def server_certificates_of(*, deployment_ids: list[str]) -> dict[str, ServerCertificate]:
    """Deployment id → its server certificate (with the authority that signed it), in one query."""
    certificates = ServerCertificate.objects.filter(deployment_id__in=deployment_ids).select_related("authority")
    return {certificate.deployment_id: certificate for certificate in certificates}


def certificate_expiries(*, deployment_ids: list[str]) -> dict[str, tuple[datetime, datetime]]:
    """Deployment id -> (not_before, not_after) of its server certificate, for those that have one."""
    rows = ServerCertificate.objects.filter(deployment_id__in=deployment_ids).values_list(
        "deployment_id", "not_before", "not_after")
    return {deployment_id: (not_before, not_after) for deployment_id, not_before, not_after in rows}
