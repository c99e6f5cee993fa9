from __future__ import annotations

import pytest
from django.contrib.admin.utils import quote  # ids contain _, which the admin escapes

from deployments.models import Deployment
from deployments.tests.factories import DeploymentFactory
from deployments.upgrades.models import BrokerVersion
from projects.models import AuditEvent
from projects.tests.factories import operator_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    staff = operator_user("ops@example.com", "an-operator-passphrase")
    client.force_login(staff)
    return staff


def test_deployment_page_shows_rendered_manifests_without_secrets(client, operator):
    deployment = DeploymentFactory(node_cookie="super-secret-cookie")
    page = client.get(f"/ops/deployments/deployment/{quote(deployment.id)}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "StatefulSet" in text and deployment.namespace in text
    assert "super-secret-cookie" not in text


def test_mark_failed_is_an_audited_operator_action(client, operator):
    deployment = DeploymentFactory(status="provisioning")
    response = client.post("/ops/deployments/deployment/", {"action": "mark_failed",
                                                            "_selected_action": [deployment.id]})
    assert response.status_code == 302
    deployment.refresh_from_db()
    assert deployment.status == "failed" and deployment.failed_operation == "provisioning"
    assert "ops@example.com" in deployment.status_reason
    assert AuditEvent.objects.get(action="deployment.mark_failed").actor_type == "staff"


def test_force_reconcile_is_audited(client, operator):
    deployment = DeploymentFactory()
    client.post("/ops/deployments/deployment/", {"action": "force_reconcile", "_selected_action": [deployment.id]})
    assert AuditEvent.objects.filter(action="deployment.force_reconcile", target_id=deployment.id).exists()
    assert Deployment.objects.get(pk=deployment.pk).status == "running"


def test_certificate_pages_are_read_only_and_never_show_private_keys(client, operator):
    from deployments.models import CertificateAuthority, ServerCertificate
    from deployments.tls.services import issue_for_deployment

    certificate, _ = issue_for_deployment(deployment=DeploymentFactory(), host="127.77.0.5")
    authority = CertificateAuthority.objects.get()
    pages = {
        "/ops/deployments/certificateauthority/": authority.id,
        f"/ops/deployments/certificateauthority/{quote(authority.id)}/change/": authority.fingerprint_sha256,
        "/ops/deployments/servercertificate/": certificate.host,
        f"/ops/deployments/servercertificate/{quote(certificate.id)}/change/": certificate.fingerprint_sha256,
    }
    for path, expected in pages.items():
        page = client.get(path)
        assert page.status_code == 200, path
        text = page.content.decode()
        assert expected in text
        assert "PRIVATE KEY" not in text and "private_key" not in text
        assert 'type="submit" value="Save"' not in text and 'name="_save"' not in text
    assert client.get(f"/ops/deployments/servercertificate/{quote(certificate.id)}/delete/").status_code == 403
    # The deployment's rendered objects mask the TLS Secret like the bootstrap one.
    page = client.get(f"/ops/deployments/deployment/{quote(certificate.deployment_id)}/change/").content.decode()
    assert "emqx-tls" in page and "PRIVATE KEY" not in page
    assert ServerCertificate.objects.count() == 1


def test_ops_deprecate_a_broker_version_with_its_end_of_support_audited(client, operator):
    page = client.get("/ops/deployments/brokerversion/")
    assert page.status_code == 200 and "5.8.6" in page.content.decode()
    response = client.post("/ops/deployments/brokerversion/5.8.5/change/",
                           {"status": "deprecated", "end_of_support": "2027-09-30"})
    assert response.status_code == 302, response.content.decode()[:2000]
    version = BrokerVersion.objects.get(pk="5.8.5")
    assert version.status == "deprecated" and str(version.end_of_support) == "2027-09-30"
    assert version.image == "emqx/emqx:5.8.5"  # not editable: deployments run it
    event = AuditEvent.objects.get(action="ops.brokerversion.update")
    assert event.changes["status"] == ["supported", "deprecated"]
    assert client.get("/ops/deployments/deploymentupgrade/").status_code == 200
