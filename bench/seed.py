"""Rows the benchmarks serve: organizations with an API key, projects, running deployments with endpoints and a
TLS server certificate, audit events; and, for the console, members with a logged-in session. Bulk inserts, so
a fleet of a few thousand rows takes a second or two."""

from __future__ import annotations

from datetime import timedelta


def bench_authority(region):
    """The region's active CA (one per region may be active), made once for every organization's certificates."""
    from django.utils import timezone

    from deployments.models import CertificateAuthority

    authority = CertificateAuthority.objects.filter(region=region, status="active").first()
    if authority is None:
        now = timezone.now()
        authority = CertificateAuthority.objects.create(
            region=region, subject="CN=bench", certificate_pem="x", private_key_pem="secret",
            fingerprint_sha256="0" * 64, not_before=now, not_after=now + timedelta(days=3650))
    return authority


def seed_organization(*, projects: int, deployments: int, audit_events: int = 0, name_prefix: str = ""):
    """One organization, an owner API key, and its rows; returns (organization, the key's secret)."""
    from django.utils import timezone

    from deployments.models import Deployment, Region, ServerCertificate, Spec
    from projects.models import AuditEvent, Project
    from projects.tests.factories import OrganizationFactory, make_api_key

    organization = OrganizationFactory()
    _, secret = make_api_key(organization)
    Project.objects.bulk_create(Project(organization=organization, name=f"{name_prefix}p{i}")
                                for i in range(projects))
    AuditEvent.objects.bulk_create(
        AuditEvent(organization=organization, actor_type="system", action=f"project.{'create' if i % 2 else 'x'}")
        for i in range(audit_events)
    )
    project = Project.objects.filter(organization=organization).first()
    region, spec = Region.objects.get(id="aws-us-east-1"), Spec.objects.get(id="basic-1k")
    now = timezone.now()
    rows = Deployment.objects.bulk_create(
        Deployment(organization=organization, project=project, name=f"broker-{i}", region=region, spec=spec,
                   target_spec=spec, tier=spec.tier, status="running", node_cookie="cookie-" * 4,
                   dashboard_password="password-" * 3,
                   endpoints={"mqtt": f"mqtt://127.77.{i // 250}.{i % 250}:1883",
                              "mqtts": f"mqtts://127.77.{i // 250}.{i % 250}:8883"})
        for i in range(deployments))
    authority = bench_authority(region)
    ServerCertificate.objects.bulk_create(
        ServerCertificate(organization=organization, deployment=d, authority=authority, host="127.77.0.1",
                          serial_number=f"{organization.pk}-{i}",
                          certificate_pem="-----BEGIN CERTIFICATE-----\n" + "A" * 1200,
                          private_key_pem="-----BEGIN PRIVATE KEY-----\n" + "B" * 1600, fingerprint_sha256="f" * 64,
                          not_before=now, not_after=now + timedelta(days=90))
        for i, d in enumerate(rows))
    return organization, secret


def console_sessions(organization, count: int) -> list[str]:
    """``count`` session keys of the organization's owner, as the console's login would leave them (user, backend,
    password hash, chosen organization). Logging in through the form would cost a password hash each (PBKDF2 in
    production: ~0.5 s of CPU), which would turn the start of a load run into a login storm."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    from projects.console.base import SESSION_ORGANIZATION_KEY
    from projects.tests.factories import MembershipFactory

    user = MembershipFactory(organization=organization).user
    keys = []
    for _ in range(count):
        session = SessionStore()
        session.update({SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: settings.AUTHENTICATION_BACKENDS[0],
                        HASH_SESSION_KEY: user.get_session_auth_hash(), SESSION_ORGANIZATION_KEY: organization.pk})
        session.create()
        keys.append(session.session_key)
    return keys
