"""The Azure peering flow through the real azure-mgmt-network client, over HTTP, against our Resource Manager
stand-in (long-running operations polled through ``Azure-AsyncOperation``)."""

from __future__ import annotations

import pytest

from deployments.models import Peering, Region, Spec
from deployments.peering import customer_side, worker
from deployments.peering.steps import CloudError
from deployments.tests.factories import DeploymentFactory
from projects.tests.factories import OrganizationFactory, make_api_key

pytestmark = pytest.mark.django_db

SUBSCRIPTION = "5f1c2b3a-0000-4000-8000-1234567890ab"
TENANT = "0a1b2c3d-0000-4000-8000-1234567890ab"
PLATFORM_VNET = ("/subscriptions/00000000-0000-4000-8000-00000000a2e0/resourceGroups/mqcloud-eastus/providers/"
                 "Microsoft.Network/virtualNetworks/mqcloud-eastus")


@pytest.fixture
def api(make_client):
    organization = OrganizationFactory()
    _, secret = make_api_key(organization)
    client = make_client(secret)
    client.deployment = DeploymentFactory(organization=organization, spec=Spec.objects.get(id="pro-1k"),
                                          region=Region.objects.get(id="azure-eastus"))
    return client


def request_peering(api, **overrides) -> dict:
    body = {"provider": "azure", "tenant_id": TENANT, "subscription_id": SUBSCRIPTION,
            "resource_group": "customer-rg", "vnet_name": "customer-vnet", "cidr": "10.30.0.0/16"} | overrides
    response = api.post(f"/api/v1/deployments/{api.deployment.id}/peerings", body, format="json")
    assert response.status_code == 202, response.content
    return response.json()


def converge(peering_id: str) -> Peering:
    worker.peering_converge_once(peering_id)
    return Peering.objects.get(pk=peering_id)


def test_create_initiated_connected_active_then_delete(api, azure_cloud):
    created = request_peering(api)
    assert created["status"] == "pending"
    peering = converge(created["id"])
    assert peering.status == "initiated"
    ours = f"{PLATFORM_VNET}/virtualNetworkPeerings/mqcloud-{peering.id}"
    assert peering.cloud_id == ours
    assert peering.cloud_state == "Initiated"
    remote = azure_cloud.peering(ours)
    assert remote["properties"]["remoteVirtualNetwork"]["id"] == (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/customer-rg/providers/Microsoft.Network/virtualNetworks/"
        f"customer-vnet")
    assert remote["properties"]["allowVirtualNetworkAccess"] is True
    assert remote["properties"]["provisioningState"] == "Succeeded"
    # The SDK polled the long-running operation before reading the result.
    operation_polls = [path for method, path in azure_cloud.state.requests if "/operations/" in path]
    assert len(operation_polls) == 2

    body = api.get(f"/api/v1/peerings/{peering.id}").json()
    assert body["instructions"]["platform_vnet_id"] == PLATFORM_VNET
    assert body["instructions"]["commands"] == [
        f"az network vnet peering create --name mqcloud-{peering.id} --resource-group customer-rg "
        f"--vnet-name customer-vnet --remote-vnet {PLATFORM_VNET} --allow-vnet-access --subscription {SUBSCRIPTION}"]
    assert body["account_id"] is None and body["tenant_id"] == TENANT

    assert worker.peering_converge_once(peering.id).again_in is not None  # waiting for the customer
    customer_side.play(peering)  # the reverse side, in the customer's subscription
    peering = converge(peering.id)
    assert peering.status == "active"
    assert peering.cloud_state == "Connected"

    assert api.delete(f"/api/v1/peerings/{peering.id}").status_code == 202
    peering = converge(peering.id)
    assert peering.status == "deleted"
    assert azure_cloud.peering(ours) is None


def test_throttling_is_retried_then_succeeds(api, azure_cloud):
    created = request_peering(api)
    azure_cloud.fail_next("PUT", 429)
    with pytest.raises(CloudError) as caught:
        worker.peering_converge_once(created["id"])
    assert caught.value.transient
    assert Peering.objects.get(pk=created["id"]).status == "pending"
    assert converge(created["id"]).status == "initiated"


def test_permanent_error_fails_with_the_clouds_message(api, azure_cloud):
    azure_cloud.deny_remote_subscription(SUBSCRIPTION)
    peering = converge(request_peering(api)["id"])
    assert peering.status == "failed"
    assert peering.status_reason.startswith("Azure: LinkedAuthorizationFailed:")


def test_customer_removing_their_side_fails_an_active_peering(api, azure_cloud):
    peering = converge(request_peering(api)["id"])
    customer_side.play(peering)
    assert converge(peering.id).status == "active"
    from deployments.peering.azure import network_client

    network_client(SUBSCRIPTION).virtual_network_peerings.begin_delete(
        "customer-rg", "customer-vnet", customer_side.REVERSE_PEERING_NAME).result()
    peering = converge(peering.id)
    assert peering.status == "failed"
    assert "Disconnected" in peering.status_reason


def test_our_side_deleted_by_hand_is_recreated(api, azure_cloud):
    peering = converge(request_peering(api)["id"])
    from deployments.peering.azure import network_client

    network_client("00000000-0000-4000-8000-00000000a2e0").virtual_network_peerings.begin_delete(
        "mqcloud-eastus", "mqcloud-eastus", f"mqcloud-{peering.id}").result()
    assert azure_cloud.peering(peering.cloud_id) is None
    assert converge(peering.id).status == "initiated"
    assert azure_cloud.peering(peering.cloud_id) is not None
