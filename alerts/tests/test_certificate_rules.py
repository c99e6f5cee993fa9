"""``certificate_expiry_days``: a rule on the deployments' TLS certificates, read from the control plane."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from alerts.evaluator import alerts_evaluate
from alerts.models import Alert
from alerts.tests.factories import AlertRuleFactory
from deployments.models import ServerCertificate
from deployments.tests.factories import DeploymentFactory
from deployments.tls import services as tls_services
from projects.tests.factories import make_api_key

pytestmark = pytest.mark.django_db


@override_settings(TLS_CERT_LIFETIME_DAYS=90, TLS_RENEW_BEFORE_DAYS=30)
def test_fires_when_a_certificate_nears_expiry_and_resolves_when_renewed(django_capture_on_commit_callbacks):
    deployment = DeploymentFactory()
    fresh = DeploymentFactory(organization=deployment.organization, project=deployment.project, name="fresh")
    DeploymentFactory(organization=deployment.organization, project=deployment.project, name="no-cert")
    issued_at = timezone.now()
    tls_services.issue_for_deployment(deployment=deployment, host="a.example", now=issued_at)
    rule = AlertRuleFactory(organization=deployment.organization, project=deployment.project,
                            metric="certificate_expiry_days", operator="<", threshold=14, duration_s=3600)
    with django_capture_on_commit_callbacks():
        assert alerts_evaluate(now=issued_at + timedelta(days=70))["fired"] == 0
        tls_services.issue_for_deployment(deployment=fresh, host="b.example", now=issued_at + timedelta(days=70))
        # 14 days left at day 76: the condition holds from then, so after an hour the rule fires.
        assert alerts_evaluate(now=issued_at + timedelta(days=76, minutes=30))["fired"] == 0
        assert alerts_evaluate(now=issued_at + timedelta(days=77))["fired"] == 1
        alert = Alert.objects.get(rule=rule)
        assert alert.deployment_id == deployment.id and alert.value == pytest.approx(13.0, abs=0.01)
        assert alert.started_at == ServerCertificate.objects.get(deployment=deployment).not_after - timedelta(days=14)
        assert alerts_evaluate(now=issued_at + timedelta(days=77, minutes=1))["fired"] == 0
        tls_services.renew_expiring(now=issued_at + timedelta(days=77, minutes=2))
        assert alerts_evaluate(now=issued_at + timedelta(days=77, minutes=3))["resolved"] == 1
    assert not Alert.objects.filter(deployment=fresh).exists()


def test_the_metric_is_offered_to_rules(make_client):
    deployment = DeploymentFactory()
    _, secret = make_api_key(deployment.organization)
    response = make_client(secret).post("/api/v1/alert-rules", {
        "name": "certificate", "project": deployment.project_id, "deployment": deployment.id,
        "metric": "certificate_expiry_days", "operator": "<", "threshold": "14", "duration_s": 0,
        "severity": "warning", "channels": [], "repeat_interval_s": 86400}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["metric"] == "certificate_expiry_days"
