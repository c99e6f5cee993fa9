"""The TLS parts of the Deployments API: ``GET /deployments/{id}/ca.pem`` and the ``tls`` field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from deployments.tests.factories import DeploymentFactory
from deployments.tls import services
from deployments.tls.x509 import load_certificate
from projects.tests.factories import OrganizationFactory, make_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def org():
    return OrganizationFactory()


@pytest.fixture
def api(org, make_client):
    _, secret = make_api_key(org)
    return make_client(secret)


def test_ca_pem_is_the_regions_ca_as_a_pem_file(api, org):
    deployment = DeploymentFactory(organization=org)
    certificate, _ = services.issue_for_deployment(deployment=deployment, host="127.77.0.5")
    for accept in ("*/*", "application/x-pem-file"):
        response = api.get(f"/api/v1/deployments/{deployment.id}/ca.pem", HTTP_ACCEPT=accept)
        assert response.status_code == 200, response.content
        assert response["Content-Type"] == "application/x-pem-file"
        assert response.content.decode() == certificate.authority.certificate_pem
    ca = load_certificate(response.content.decode())
    assert load_certificate(certificate.certificate_pem).issuer == ca.subject


def test_ca_pem_of_another_organizations_deployment_is_404(api):
    stranger = DeploymentFactory()
    services.issue_for_deployment(deployment=stranger, host="127.77.0.6")
    response = api.get(f"/api/v1/deployments/{stranger.id}/ca.pem")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert "BEGIN CERTIFICATE" not in response.content.decode()


def test_ca_pem_before_any_ca_is_a_404_problem(api, org):
    deployment = DeploymentFactory(organization=org, status="provisioning")
    response = api.get(f"/api/v1/deployments/{deployment.id}/ca.pem", HTTP_ACCEPT="application/x-pem-file")
    assert response.status_code == 404
    assert response.json()["detail"] == f"The deployment {deployment.id} has no certificate authority yet."


def test_the_tls_field_is_null_until_a_certificate_exists_then_names_it(api, org):
    deployment = DeploymentFactory(organization=org)
    assert api.get(f"/api/v1/deployments/{deployment.id}").json()["tls"] is None
    certificate, _ = services.issue_for_deployment(deployment=deployment, host="127.77.0.5")
    tls = api.get(f"/api/v1/deployments/{deployment.id}").json()["tls"]
    assert tls["fingerprint_sha256"] == certificate.fingerprint_sha256
    assert datetime.fromisoformat(tls["not_after"]) == certificate.not_after.astimezone(UTC)
    assert tls["ca_pem_url"] == f"/api/v1/deployments/{deployment.id}/ca.pem"
    assert "private_key" not in str(tls) and "BEGIN" not in str(tls)


def test_listing_reads_the_certificates_in_the_same_query(api, org):
    for host in ("a.example", "b.example", "c.example"):
        services.issue_for_deployment(deployment=DeploymentFactory(organization=org), host=host)
    api.get("/api/v1/deployments")  # warm up (authentication caches)
    with CaptureQueriesContext(connection) as few:
        body = api.get("/api/v1/deployments", {"limit": 1}).json()
    with CaptureQueriesContext(connection) as many:
        body = api.get("/api/v1/deployments", {"limit": 3}).json()
    assert all(d["tls"] for d in body["results"])
    assert len(many) == len(few)


def test_the_console_downloads_ca_pem_for_members_only():
    from tests.support import console_login, console_url

    client, member = console_login()
    deployment = DeploymentFactory(organization=member.organization)
    response = client.get(console_url("deployment-ca-pem", deployment.id))
    assert response.status_code == 404  # no CA yet
    certificate, _ = services.issue_for_deployment(deployment=deployment, host="127.77.0.5")
    response = client.get(console_url("deployment-ca-pem", deployment.id))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-pem-file"
    assert response["Content-Disposition"] == f'attachment; filename="{deployment.id}-ca.pem"'
    assert response.content.decode() == certificate.authority.certificate_pem
    stranger = DeploymentFactory()
    assert client.get(console_url("deployment-ca-pem", stranger.id)).status_code == 404
