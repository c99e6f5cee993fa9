"""A fresh simulated cluster per test (starting one takes milliseconds), reached only through the official
client over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from k8s.simulator import SimulatedCluster


@pytest.fixture
def cluster() -> Iterator[SimulatedCluster]:
    with SimulatedCluster(ready_delay_s=0.1, namespace_delete_delay_s=0.2, seed=7) as sim:
        yield sim


@pytest.fixture
def api(cluster: SimulatedCluster) -> Iterator[client.ApiClient]:
    with cluster.api_client() as api_client:
        yield api_client


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
def apps(api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api)


@pytest.fixture
def ns(core: client.CoreV1Api) -> str:
    core.create_namespace({"metadata": {"name": "dep-1"}})
    return "dep-1"
