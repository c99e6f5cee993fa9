"""Helpers the test suites of several apps share (fixtures live in the root conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from controlplane.celery import app as celery_app

if TYPE_CHECKING:
    from django.test import Client

    from k8s.simulator import SimulatedCluster
    from projects.models import Membership


@contextmanager
def eager_tasks(*, propagate: bool = True) -> Iterator[None]:
    """Runs Celery tasks in-process while inside. ``propagate=False`` lets an eager task's ``retry`` run at
    once instead of raising ``Retry`` into the test."""
    before = celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = True, propagate
    try:
        yield
    finally:
        celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = before


@contextmanager
def simulated_cluster(*, seed: int, ready_delay_s: float = 0.05, namespace_delete_delay_s: float = 0.2,
                      poll_s: float = 0.1, **options: Any) -> Iterator[SimulatedCluster]:
    """A simulated Kubernetes cluster every region's deployments go to, with the cached clients forgotten
    before and after (they would point at the previous test's cluster). ``options`` go to the cluster (e.g.
    ``brokers_dir`` for real brokers)."""
    from django.test import override_settings

    from k8s.clusters import forget_clients
    from k8s.simulator import SimulatedCluster

    with SimulatedCluster(ready_delay_s=ready_delay_s, namespace_delete_delay_s=namespace_delete_delay_s,
                          seed=seed, **options) as simulated:
        with override_settings(KUBERNETES_SIMULATOR_URL=simulated.url, KUBERNETES_CLUSTERS={},
                               DEPLOYMENT_POLL_SECONDS=poll_s):
            forget_clients()
            try:
                yield simulated
            finally:
                forget_clients()


@contextmanager
def running_worker() -> Iterator[None]:
    """A real Celery worker on the test broker (Redis), in a thread; queued leftovers are purged first."""
    from celery.contrib.testing.worker import start_worker
    from django.db import connections

    assert not celery_app.conf.task_always_eager
    celery_app.control.purge()
    try:
        with start_worker(celery_app, perform_ping_check=False, pool="solo", shutdown_timeout=30):
            yield
    finally:
        connections.close_all()


def wait_for(predicate: Callable[[], object], what: str, timeout: float = 40.0) -> object:
    """Polls until ``predicate`` returns something truthy, and returns it; fails the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# --- console pages ------------------------------------------------------------------------------------------
def console_login(role: str | None = None, **membership: object) -> tuple[Client, Membership]:
    """A console client logged in as a new member (owner unless ``role``) of a new organization."""
    from django.test import Client

    from projects.roles import Role
    from projects.tests.factories import MembershipFactory

    member = MembershipFactory(role=role or Role.OWNER, **membership)
    client = Client()
    client.force_login(member.user)
    return client, member


def console_url(name: str, *args: object) -> str:
    from django.urls import reverse

    return reverse(f"console:{name}", args=args)


def console_page(client: Client, name: str, *args: object, **headers: str) -> str:
    """The HTML of a console page, which must answer 200."""
    response = client.get(console_url(name, *args), headers=headers)
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


# --- concurrency --------------------------------------------------------------------------------------------
def run_in_parallel(count: int, call: Callable[[int], object]) -> list[object]:
    """Calls ``call(0..count-1)`` from ``count`` real threads released together, each on its own database
    connection (closed afterwards); returns the results in order. Use with ``django_db(transaction=True)``:
    the threads see only committed rows."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    start = threading.Barrier(count)

    def run(index: int) -> object:
        try:
            start.wait(timeout=30)
            return call(index)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))
