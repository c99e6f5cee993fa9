"""Issue 14, item 7: with the simulated clouds (``make run``, the tests) the peering form offers the simulated
customer's network as a one-click fill, which the simulated cloud then accepts; without them it offers nothing."""

from __future__ import annotations

import pytest
from django.test import override_settings
from django.urls import reverse

from deployments.models import Peering, Region, Spec
from deployments.peering import customer_side, worker
from deployments.peering.network import DEMO_AZURE_CUSTOMER, DEMO_CUSTOMER_KEY, simulated_customer
from deployments.tests.conftest import CUSTOMER_ACCOUNT
from deployments.tests.factories import DeploymentFactory
from projects.roles import Role
from projects.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def member(client):
    membership = MembershipFactory(role=Role.DEVELOPER)
    client.force_login(membership.user)
    client.organization = membership.organization
    return client


@pytest.fixture
def demo_vpc(aws_cloud, settings):
    """What ``deployments.cloudsim`` does on ``make run``: the customer's VPC made and recorded with the networks."""
    vpc_id = customer_side.ensure_customer_vpc(CUSTOMER_ACCOUNT, "us-east-1", "10.20.0.0/16")
    settings.PEERING_PLATFORM_NETWORKS = {**settings.PEERING_PLATFORM_NETWORKS, DEMO_CUSTOMER_KEY: {
        "account_id": CUSTOMER_ACCOUNT, "region": "us-east-1", "cidr": "10.20.0.0/16", "vpc_id": vpc_id}}
    return vpc_id


def test_aws_fill_offers_the_simulated_customer_and_the_cloud_accepts_it(member, demo_vpc):
    deployment = DeploymentFactory(organization=member.organization, spec=Spec.objects.get(id="pro-1k"))
    url = reverse("console:peering-create", args=[deployment.id])
    page = member.get(url).content.decode()
    assert "Fill in the simulated customer" in page and demo_vpc in page
    assert "vpc-0a1b2c3d4e5f67890" not in page and "123456789012" not in page  # no real-looking examples
    filled = member.get(url, {"fill": "simulated"}).content.decode()
    assert f'value="{demo_vpc}"' in filled and f'value="{CUSTOMER_ACCOUNT}"' in filled
    assert 'value="10.20.0.0/16"' in filled

    response = member.post(url, {"provider": "aws", "account_id": CUSTOMER_ACCOUNT, "vpc_id": demo_vpc,
                                 "region": "us-east-1", "cidr": "10.20.0.0/16"})
    assert response.status_code == 302
    peering = Peering.objects.get()
    worker.peering_converge_once(peering.id)
    peering.refresh_from_db()
    assert peering.status == "pending_acceptance", peering.status_reason


def test_azure_fill_offers_the_simulated_customers_vnet(member, azure_cloud):
    deployment = DeploymentFactory(organization=member.organization, spec=Spec.objects.get(id="pro-1k"),
                                   region=Region.objects.get(id="azure-eastus"))
    filled = member.get(reverse("console:peering-create", args=[deployment.id]), {"fill": "simulated"}).content
    assert f'value="{DEMO_AZURE_CUSTOMER["vnet_name"]}"'.encode() in filled
    assert f'value="{DEMO_AZURE_CUSTOMER["subscription_id"]}"'.encode() in filled


def test_nothing_is_offered_without_the_simulated_clouds(member, demo_vpc, settings):
    deployment = DeploymentFactory(organization=member.organization, spec=Spec.objects.get(id="pro-1k"))
    url = reverse("console:peering-create", args=[deployment.id])
    with override_settings(PEERING_SIMULATED_CUSTOMER=False):  # what production forces
        assert simulated_customer(deployment.region) is None
        page = member.get(url, {"fill": "simulated"}).content.decode()
        assert "simulated customer" not in page and demo_vpc not in page
    with override_settings(PEERING_AWS_ENDPOINT_URL=""):  # real AWS
        assert simulated_customer(deployment.region) is None
    with override_settings(PEERING_AZURE_SIMULATED=False):
        assert simulated_customer(Region.objects.get(id="azure-eastus")) is None
    settings.PEERING_PLATFORM_NETWORKS = {}  # the simulated cloud has made no customer VPC
    assert simulated_customer(deployment.region) is None
