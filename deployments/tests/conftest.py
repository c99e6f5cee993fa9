"""Simulated clouds for the peering tests: moto's server (two AWS accounts) and the Azure stand-in, both
over real HTTP through the real SDKs."""

from __future__ import annotations

import urllib.request

import pytest
from django.test import override_settings

from deployments.cloudsim import bootstrap_aws
from deployments.models import Region
from deployments.peering.azure_sim import AzureSim
from deployments.tests.factories import DeploymentFactory
from projects.roles import Role
from projects.tests.factories import OrganizationFactory, ProjectFactory, make_api_key

CUSTOMER_ACCOUNT = "111122223333"


@pytest.fixture(scope="session")
def moto_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def azure_server():
    with AzureSim() as sim:
        yield sim


@pytest.fixture
def aws_cloud(moto_server, db):
    """A fresh moto with the platform network of aws-us-east-1 created; settings point the workers at it."""
    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST"), timeout=10)
    region = Region.objects.get(id="aws-us-east-1")
    overrides = bootstrap_aws(endpoint_url=moto_server, regions=[
        {"id": region.id, "provider": region.provider, "code": region.code, "network": region.network}])
    with override_settings(PEERING_AWS_ENDPOINT_URL=moto_server, PEERING_AWS_ACCESS_KEY_ID="testing",
                           PEERING_AWS_SECRET_ACCESS_KEY="testing", PEERING_PLATFORM_NETWORKS=overrides,
                           PEERING_PLATFORM_NETWORKS_FILE="", PEERING_SIMULATED_CUSTOMER=True,
                           PEERING_POLL_SECONDS=0.1):
        yield {"url": moto_server, "network": {**region.network, **overrides[region.id]}}


@pytest.fixture
def azure_cloud(azure_server):
    azure_server.reset()
    with override_settings(PEERING_AZURE_ENDPOINT_URL=azure_server.url, PEERING_AZURE_SIMULATED=True,
                           PEERING_AZURE_RETRY_TOTAL=0, PEERING_AZURE_POLLING_INTERVAL=0,
                           PEERING_PLATFORM_NETWORKS_FILE="", PEERING_SIMULATED_CUSTOMER=True,
                           PEERING_POLL_SECONDS=0.1):
        yield azure_server


@pytest.fixture
def project_api(make_client):
    """An API client with an owner's key of a new organization, and that organization's project as ``.project``."""
    organization = OrganizationFactory()
    _, secret = make_api_key(organization)
    api = make_client(secret)
    api.project = ProjectFactory(organization=organization)
    return api


# An organization, one deployment of it, and an API client with an owner's key (the MQTT access tests).
@pytest.fixture
def org():
    return OrganizationFactory()


@pytest.fixture
def deployment(org):
    return DeploymentFactory(organization=org)


@pytest.fixture
def api(org, make_client):
    _, secret = make_api_key(org, role=Role.OWNER)
    return make_client(secret)
