"""Writes of the deployments' TLS material: the regions' CAs and the deployments' server certificates.

Every function is idempotent (a rerun changes nothing that is still good), so the hourly renewal job and the
reconciler may call them as often as they like. Private keys are generated here and stored encrypted
(``EncryptedTextField``); they leave only towards the cluster, inside the deployment's Secret.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from controlplane.db import lock_row
from controlplane.queue import enqueue_on_commit
from deployments.models import CertificateAuthority, Deployment, Region, ServerCertificate
from deployments.models import CertificateAuthorityStatus as CA
from deployments.models import DeploymentStatus as S
from deployments.tls import x509

logger = logging.getLogger(__name__)

#: Re-applies a settled deployment's objects, so a renewed certificate reaches its brokers now rather than at
#: the reconciler's next pass (by name: tasks import services, not the other way round).
REPAIR_TASK = "deployments.tasks.deployment_repair"


def _days(name: str) -> timedelta:
    return timedelta(days=getattr(settings, name))


def _new_ca(region_id: str, now: datetime) -> CertificateAuthority:
    common_name = f"mqcloud {region_id} CA {now:%Y-%m}"
    made = x509.make_ca(common_name=common_name, now=now, lifetime=_days("TLS_CA_LIFETIME_DAYS"))
    return CertificateAuthority.objects.create(
        region_id=region_id, status=CA.ACTIVE, subject=common_name, certificate_pem=made.certificate_pem,
        private_key_pem=made.private_key_pem, fingerprint_sha256=made.fingerprint_sha256,
        not_before=made.not_before, not_after=made.not_after, created_at=now)


def ensure_region_ca(*, region_id: str, now: datetime | None = None) -> CertificateAuthority:
    """The region's active CA, made on first use."""
    now = now or timezone.now()
    existing = CertificateAuthority.objects.filter(region_id=region_id, status=CA.ACTIVE).first()
    if existing is not None:
        return existing
    with transaction.atomic():
        # Two workers issuing the region's first certificates at once: the region row makes them take turns,
        # so the second finds the first one's CA rather than tripping over the one-active constraint.
        lock_row(Region, region_id)
        existing = CertificateAuthority.objects.filter(region_id=region_id, status=CA.ACTIVE).first()
        return existing or _new_ca(region_id, now)


def _due(certificate: ServerCertificate, now: datetime) -> bool:
    return certificate.not_after - now <= _days("TLS_RENEW_BEFORE_DAYS")


def issue_for_deployment(*, deployment: Deployment, host: str, now: datetime | None = None,
                         force: bool = False) -> tuple[ServerCertificate, bool]:
    """The deployment's server certificate for ``host``: (certificate, whether it was (re-)issued now).

    Kept as it is while it names ``host`` and is not due for renewal; otherwise a new key and certificate from
    the region's active CA replace it (a changed address, a renewal, a retiring CA's certificate coming due),
    or with ``force`` (a rotation an operator planned, ``deployments.maintenance.planned``).
    """
    now = now or timezone.now()
    host = host.strip().lower()
    current = ServerCertificate.objects.filter(deployment_id=deployment.id).first()
    if current is not None and current.host == host and not _due(current, now) and not force:
        return current, False
    authority = ensure_region_ca(region_id=deployment.region_id, now=now)
    issued = x509.issue_server_certificate(host=host, ca_certificate_pem=authority.certificate_pem,
                                           ca_private_key_pem=authority.private_key_pem, now=now,
                                           lifetime=_days("TLS_CERT_LIFETIME_DAYS"))
    certificate, _ = ServerCertificate.objects.update_or_create(deployment_id=deployment.id, defaults={
        "organization_id": deployment.organization_id, "authority": authority, "host": host,
        "sans": list(issued.sans), "serial_number": issued.serial_number,
        "certificate_pem": issued.certificate_pem, "private_key_pem": issued.private_key_pem,
        "fingerprint_sha256": issued.fingerprint_sha256, "not_before": issued.not_before,
        "not_after": issued.not_after, "issued_at": now})
    logger.info("issued the TLS certificate of %s for %s (%s, expires %s)", deployment.id, host,
                issued.fingerprint_sha256[:16], issued.not_after.isoformat())
    return certificate, True


def _rotate_cas(now: datetime) -> int:
    """Regions whose active CA is near its expiry get a new one; the old one retires once unused."""
    rotated = 0
    for authority in CertificateAuthority.objects.filter(status=CA.ACTIVE,
                                                         not_after__lte=now + _days("TLS_CA_RENEW_BEFORE_DAYS")):
        with transaction.atomic():
            lock_row(Region, authority.region_id)
            if not CertificateAuthority.objects.filter(pk=authority.pk, status=CA.ACTIVE).update(status=CA.RETIRING):
                continue  # another run rotated it
            _new_ca(authority.region_id, now)
        rotated += 1
        logger.info("rotated the CA of %s: %s is retiring", authority.region_id, authority.id)
    return rotated


def renew_expiring(*, now: datetime | None = None) -> dict[str, int]:
    """The hourly job: rotate CAs near expiry, re-issue certificates near expiry (those of a retiring CA come
    due before it expires, since none outlives its CA), and retire CAs nothing uses any more."""
    now = now or timezone.now()
    counts = {"cas_rotated": _rotate_cas(now), "certificates_renewed": 0, "cas_retired": 0}
    # A deleted deployment's key is of no further use; dropping it also lets its CA retire.
    ServerCertificate.objects.filter(deployment__status=S.DELETED).delete()
    due = ServerCertificate.objects.filter(not_after__lte=now + _days("TLS_RENEW_BEFORE_DAYS")).select_related(
        "deployment")
    for certificate in due:
        deployment = certificate.deployment
        _, renewed = issue_for_deployment(deployment=deployment, host=certificate.host, now=now)
        if renewed:
            counts["certificates_renewed"] += 1
            if deployment.status in (S.RUNNING, S.STOPPED):
                # Transitional deployments apply their objects on their own next step.
                enqueue_on_commit(REPAIR_TASK, deployment.id)
    for authority in CertificateAuthority.objects.filter(status=CA.RETIRING):
        if authority.not_after <= now or not authority.certificates.exists():
            # Nothing it signed is served any more: drop its key, it will never sign again.
            CertificateAuthority.objects.filter(pk=authority.pk, status=CA.RETIRING).update(
                status=CA.RETIRED, retired_at=now, private_key_pem="")
            counts["cas_retired"] += 1
    return counts
