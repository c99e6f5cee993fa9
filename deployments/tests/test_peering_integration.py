"""Peerings driven by a real Celery worker on Redis: the API enqueues on commit, the task converges step by
step and reschedules itself while waiting for the customer; the beat reconciler re-drives what is stuck."""

from __future__ import annotations

import pytest

from controlplane.celery import app as celery_app
from deployments.models import Peering, Region, Spec
from deployments.peering import customer_side
from deployments.tasks import peerings_reconcile
from deployments.tests.conftest import CUSTOMER_ACCOUNT
from deployments.tests.factories import DeploymentFactory
from deployments.tests.test_lifecycle_integration import running_worker, wait_for
from projects.tests.factories import OrganizationFactory, make_api_key

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker():
    celery_app.control.purge()
    with running_worker():
        yield


def make_api(make_client, region_id: str):
    organization = OrganizationFactory()
    _, secret = make_api_key(organization)
    api = make_client(secret)
    api.deployment = DeploymentFactory(organization=organization, spec=Spec.objects.get(id="pro-1k"),
                                       region=Region.objects.get(id=region_id))
    return api


def wait_status(api, peering_id: str, status: str) -> dict:
    def current():
        body = api.get(f"/api/v1/peerings/{peering_id}").json()
        assert body["status"] != "failed" or status == "failed", body
        return body if body["status"] == status else None

    return wait_for(current, f"{peering_id} to be {status}")


def test_aws_peering_through_the_worker(make_client, aws_cloud, worker):
    api = make_api(make_client, "aws-us-east-1")
    vpc_id = customer_side.ensure_customer_vpc(CUSTOMER_ACCOUNT, "us-east-1", "10.20.0.0/16")
    created = api.post(f"/api/v1/deployments/{api.deployment.id}/peerings",
                       {"provider": "aws", "account_id": CUSTOMER_ACCOUNT, "vpc_id": vpc_id, "region": "us-east-1",
                        "cidr": "10.20.0.0/16"}, format="json")
    assert created.status_code == 202, created.content
    peering_id = created.json()["id"]
    waiting = wait_status(api, peering_id, "pending_acceptance")
    assert waiting["instructions"]["peering_connection_id"].startswith("pcx-")

    customer_side.play(Peering.objects.get(pk=peering_id))
    wait_status(api, peering_id, "active")  # the task kept polling until the customer accepted

    assert api.delete(f"/api/v1/peerings/{peering_id}").status_code == 202
    wait_status(api, peering_id, "deleted")


def test_azure_peering_through_the_worker_and_the_reconciler(make_client, azure_cloud, worker):
    api = make_api(make_client, "azure-eastus")
    created = api.post(f"/api/v1/deployments/{api.deployment.id}/peerings",
                       {"provider": "azure", "tenant_id": "0a1b2c3d-0000-4000-8000-1234567890ab",
                        "subscription_id": "5f1c2b3a-0000-4000-8000-1234567890ab", "resource_group": "rg",
                        "vnet_name": "vnet", "cidr": "10.30.0.0/16"}, format="json")
    peering_id = created.json()["id"]
    wait_status(api, peering_id, "initiated")
    customer_side.play(Peering.objects.get(pk=peering_id))
    wait_status(api, peering_id, "active")

    # Stuck in deleting (say the task was lost): the beat job re-drives it.
    Peering.objects.filter(pk=peering_id).update(status="deleting")
    assert peerings_reconcile() >= 1
    wait_status(api, peering_id, "deleted")
