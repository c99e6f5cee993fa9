"""Issuing and renewing the deployments' certificates: idempotent, keys encrypted at rest, CA rotation."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from deployments.models import CertificateAuthority, ServerCertificate
from deployments.models import CertificateAuthorityStatus as CA
from deployments.tests.factories import DeploymentFactory
from deployments.tls import selectors, services
from deployments.tls.x509 import load_certificate

pytestmark = pytest.mark.django_db


def test_one_ca_per_region_made_on_first_use_with_its_key_encrypted():
    first = services.ensure_region_ca(region_id="aws-us-east-1")
    assert services.ensure_region_ca(region_id="aws-us-east-1").pk == first.pk
    assert first.id.startswith("cau_") and first.status == CA.ACTIVE
    with connection.cursor() as cursor:
        cursor.execute("SELECT private_key_pem FROM deployments_certificateauthority WHERE id = %s", [first.id])
        (stored,) = cursor.fetchone()
    assert "PRIVATE KEY" not in stored and "PRIVATE KEY" in first.private_key_pem
    assert CertificateAuthority.objects.count() == 1


def test_issuing_is_idempotent_until_the_host_changes():
    deployment = DeploymentFactory()
    certificate, issued = services.issue_for_deployment(deployment=deployment, host="127.77.0.5")
    assert issued and certificate.sans == ["IP:127.77.0.5"] and certificate.id.startswith("crt_")
    again, issued_again = services.issue_for_deployment(deployment=deployment, host="127.77.0.5")
    assert not issued_again and again.fingerprint_sha256 == certificate.fingerprint_sha256
    moved, issued_moved = services.issue_for_deployment(deployment=deployment, host="127.77.0.9")
    assert issued_moved and moved.pk == certificate.pk and moved.sans == ["IP:127.77.0.9"]
    assert moved.fingerprint_sha256 != certificate.fingerprint_sha256
    assert ServerCertificate.objects.count() == 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT private_key_pem FROM deployments_servercertificate")
        assert "PRIVATE KEY" not in cursor.fetchone()[0]


@override_settings(TLS_CERT_LIFETIME_DAYS=90, TLS_RENEW_BEFORE_DAYS=30)
def test_renewal_reissues_only_what_comes_due_and_a_rerun_changes_nothing(django_capture_on_commit_callbacks):
    due, fresh = DeploymentFactory(), DeploymentFactory()
    start = timezone.now()
    services.issue_for_deployment(deployment=due, host="a.example", now=start)
    services.issue_for_deployment(deployment=fresh, host="b.example", now=start + timedelta(days=30))
    before = {c.deployment_id: c.fingerprint_sha256 for c in ServerCertificate.objects.all()}
    later = start + timedelta(days=61)
    with django_capture_on_commit_callbacks() as callbacks:
        assert services.renew_expiring(now=later)["certificates_renewed"] == 1
    assert len(callbacks) == 1  # the running deployment's Secret is re-applied
    after = {c.deployment_id: c for c in ServerCertificate.objects.all()}
    assert after[due.id].fingerprint_sha256 != before[due.id]
    assert after[due.id].not_after >= later + timedelta(days=89)
    assert after[fresh.id].fingerprint_sha256 == before[fresh.id]
    assert services.renew_expiring(now=later)["certificates_renewed"] == 0


@override_settings(TLS_CA_LIFETIME_DAYS=400, TLS_CA_RENEW_BEFORE_DAYS=100, TLS_CERT_LIFETIME_DAYS=90,
                   TLS_RENEW_BEFORE_DAYS=30)
def test_ca_rotation_serves_both_cas_until_the_old_ones_certificates_are_reissued():
    deployment = DeploymentFactory()
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        services.issue_for_deployment(deployment=deployment, host="127.77.0.5")
        old = CertificateAuthority.objects.get()
    # Day 290: the certificate is renewed by the old CA (110 days left, not rotated yet), until day 380. Day 310:
    # the CA has 90 days left and a new one takes over; the certificate has 70 days and stays, so ca.pem must
    # carry both CAs.
    with time_machine.travel(start + timedelta(days=290), tick=False):
        assert services.renew_expiring() == {"cas_rotated": 0, "certificates_renewed": 1, "cas_retired": 0}
    with time_machine.travel(start + timedelta(days=310), tick=False):
        counts = services.renew_expiring()
    assert counts["cas_rotated"] == 1 and counts["cas_retired"] == 0
    old.refresh_from_db()
    new = CertificateAuthority.objects.get(status=CA.ACTIVE)
    assert old.status == CA.RETIRING
    bundle = selectors.ca_bundle_pem(region_id="aws-us-east-1")
    assert bundle == new.certificate_pem + old.certificate_pem
    assert ServerCertificate.objects.get().authority_id == old.id
    # The certificate never outlives its CA, so it comes due before the old CA expires: re-issued by the new
    # one, and the old CA retires (its key wiped).
    assert ServerCertificate.objects.get().not_after <= old.not_after
    with time_machine.travel(start + timedelta(days=352), tick=False):
        counts = services.renew_expiring()
    assert counts == {"cas_rotated": 0, "certificates_renewed": 1, "cas_retired": 1}
    certificate = ServerCertificate.objects.get()
    assert certificate.authority_id == new.id
    assert load_certificate(certificate.certificate_pem).issuer == load_certificate(new.certificate_pem).subject
    old.refresh_from_db()
    assert old.status == CA.RETIRED and old.private_key_pem == ""
    assert selectors.ca_bundle_pem(region_id="aws-us-east-1") == new.certificate_pem


def test_deleted_deployments_lose_their_certificates():
    deployment = DeploymentFactory()
    services.issue_for_deployment(deployment=deployment, host="a.example")
    deployment.status = "deleted"
    deployment.save(update_fields=["status"])
    services.renew_expiring()
    assert not ServerCertificate.objects.exists()


def test_the_hourly_beat_job_runs_the_renewal(settings):
    from celery import current_app

    from deployments.tasks import tls_certificates_renew

    entry = settings.CELERY_BEAT_SCHEDULE["tls-certificates-renew"]
    assert entry["task"] == "deployments.tasks.tls_certificates_renew"
    assert entry["task"] in current_app.tasks
    assert entry["schedule"].remaining_estimate(timezone.now()) <= timedelta(hours=1)
    deployment = DeploymentFactory()
    services.issue_for_deployment(deployment=deployment, host="a.example", now=timezone.now() - timedelta(days=80))
    assert tls_certificates_renew.apply().get()["certificates_renewed"] == 1
    assert tls_certificates_renew.apply().get()["certificates_renewed"] == 0
