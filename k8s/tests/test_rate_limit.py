"""Our side's rate limit per cluster (client-go's token bucket): a burst passes at once, then requests wait
their turn at ``qps``; every typed call of a cluster's client takes its token."""

from __future__ import annotations

import threading
import time

import pytest
from django.test import override_settings
from kubernetes import client

from k8s.clusters import ThrottledApiClient, TokenBucket, api_client_for_region, forget_clients
from k8s.simulator import SimulatedCluster


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def test_a_burst_passes_then_requests_wait_their_turn() -> None:
    clock = FakeClock()
    bucket = TokenBucket(qps=10, burst=3, clock=clock, sleep=clock.sleep)
    assert [bucket.acquire() for _ in range(3)] == [0, 0, 0]
    assert bucket.acquire() == pytest.approx(0.1)
    assert bucket.acquire() == pytest.approx(0.1)
    clock.now += 10  # a quiet spell refills the bucket, up to the burst only
    assert [bucket.acquire() for _ in range(3)] == [0, 0, 0]
    assert bucket.acquire() == pytest.approx(0.1)


def test_waiting_callers_queue_behind_each_other() -> None:
    """Threads that find the bucket empty are given successive slots, not the same one."""
    clock = FakeClock()
    lock = threading.Lock()
    waits: list[float] = []
    bucket = TokenBucket(qps=5, burst=1, clock=clock, sleep=lambda _: None)  # time stands still
    bucket.acquire()

    def take() -> None:
        wait = bucket.acquire()
        with lock:
            waits.append(round(wait, 6))

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(waits) == [0.2, 0.4, 0.6, 0.8]


def test_no_limit_with_a_qps_of_zero() -> None:
    clock = FakeClock()
    bucket = TokenBucket(qps=0, burst=1, clock=clock, sleep=clock.sleep)
    assert all(bucket.acquire() == 0 for _ in range(100)) and clock.slept == []


def test_every_call_of_a_clusters_client_takes_a_token() -> None:
    with SimulatedCluster(seed=3) as cluster, override_settings(
            KUBERNETES_SIMULATOR_URL=cluster.url, KUBERNETES_CLUSTERS={"aws-us-east-1": {"qps": 0.001, "burst": 7}}):
        forget_clients()
        try:
            api_client = api_client_for_region("aws-us-east-1")
            assert isinstance(api_client, ThrottledApiClient)
            assert (api_client.bucket.qps, api_client.bucket.burst) == (0.001, 7)
            core = client.CoreV1Api(api_client)
            for _ in range(5):
                core.list_namespace()
            assert api_client.bucket._tokens == pytest.approx(2, abs=0.01)  # 7 - 5 (0.001/s refills nothing)
            assert cluster.api_calls(method="GET") == 5
        finally:
            forget_clients()


def test_a_throttled_answer_holds_every_caller_then_the_call_is_retried() -> None:
    """client-go's answer to 429 (and 503) with Retry-After: wait that long, then send again (up to a few
    times); every other caller of the same cluster waits too, instead of hammering a server that said stop."""
    with SimulatedCluster(seed=3) as cluster, override_settings(KUBERNETES_SIMULATOR_URL=cluster.url):
        forget_clients()
        try:
            api_client = api_client_for_region("aws-us-east-1")
            core = client.CoreV1Api(api_client)
            cluster.faults.fail_next(2, status=429, verb="list", resource="namespaces", retry_after_s=1)
            started = time.monotonic()
            core.list_namespace()
            assert cluster.api_calls(method="GET") == 3
            assert time.monotonic() - started >= 1.9  # two holds of a second each
            # A hold is the bucket's: a caller that comes during it waits for its end, whatever it asks.
            api_client.bucket.hold(0.5)
            started = time.monotonic()
            core.read_namespace("default")
            assert time.monotonic() - started >= 0.45
        finally:
            forget_clients()


def test_throttling_that_does_not_end_is_left_to_the_workers_retry() -> None:
    """Retrying inline is for short holds: past a few tries, or a Retry-After too long to wait in a worker,
    the error goes up (the worker retries the whole step later, with backoff) and the bucket stays held."""
    with SimulatedCluster(seed=3) as cluster, override_settings(KUBERNETES_SIMULATOR_URL=cluster.url):
        forget_clients()
        try:
            api_client = api_client_for_region("aws-us-east-1")
            core = client.CoreV1Api(api_client)
            cluster.faults.fail_next(1, status=429, verb="list", resource="namespaces", retry_after_s=120)
            with pytest.raises(client.ApiException) as raised:
                core.list_namespace()
            assert raised.value.status == 429 and cluster.api_calls(method="GET") == 1
            assert api_client.bucket.held_for() > 100
            api_client.bucket.hold(0)  # a hold never shortens: the cluster asked for two minutes
            assert api_client.bucket.held_for() > 100
        finally:
            forget_clients()


def test_a_server_error_without_retry_after_is_not_retried_inline() -> None:
    with SimulatedCluster(seed=3) as cluster, override_settings(KUBERNETES_SIMULATOR_URL=cluster.url):
        forget_clients()
        try:
            core = client.CoreV1Api(api_client_for_region("aws-us-east-1"))
            cluster.faults.fail_next(1, status=503, verb="list", resource="namespaces")
            with pytest.raises(client.ApiException):
                core.list_namespace()
            assert cluster.api_calls(method="GET") == 1
        finally:
            forget_clients()
