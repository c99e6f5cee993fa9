#!/usr/bin/env python
"""Provisioning N deployments in the simulated cluster: Kubernetes API calls per deployment against the
minimum (one apply per rendered object), and the time to reconcile one settled deployment against a
baseline measured in the same run (one GET of a namespace through the same client).

The workers' logic runs in-process (provisioning.deployment_converge_once, as the Celery task calls it) so the
numbers are about our code and the API traffic, not about queue latency.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

from harness import benchmark_database, median_seconds

COUNT = int(os.environ.get("BENCH_DEPLOYMENTS", "200"))


def main() -> int:
    from django.test import override_settings

    from k8s.clusters import forget_clients
    from k8s.simulator import SimulatedCluster

    with benchmark_database("mqcloud_bench_provisioning"), SimulatedCluster(ready_delay_s=0.0) as cluster, \
            override_settings(KUBERNETES_SIMULATOR_URL=cluster.url, KUBERNETES_CLUSTERS={},
                              DEPLOYMENT_POLL_SECONDS=0, KUBERNETES_CLIENT_QPS=0,  # calls counted, not paced
                              KUBERNETES_WATCH_CACHE=True):  # as outside the test profile
        forget_clients()
        from kubernetes import client as k8s_client

        from deployments import provisioning
        from deployments.models import Deployment, Region, Spec
        from k8s.render import render
        from projects.tests.factories import OrganizationFactory, ProjectFactory

        organization = OrganizationFactory()
        project = ProjectFactory(organization=organization)
        region, spec = Region.objects.get(id="aws-us-east-1"), Spec.objects.get(id="pro-1k")
        deployments = [
            Deployment.objects.create(organization=organization, project=project, name=f"d{i}", region=region,
                                      spec=spec, target_spec=spec, tier=spec.tier, node_cookie="c",
                                      dashboard_password="p")
            for i in range(COUNT)
        ]
        from k8s.clusters import watch_for_region

        cache = watch_for_region("aws-us-east-1")
        while cache is not None and not cache.synced:
            time.sleep(0.01)
        watch_calls = cluster.api_calls()  # its LIST and WATCH per kind, once for every deployment to come
        cluster.reset_api_calls()

        steps, started = [], time.perf_counter()
        for deployment in deployments:
            count = 0
            while True:
                count += 1
                step = provisioning.deployment_converge_once(deployment.id)
                if step.again_in is None:
                    break
                time.sleep(0.002)  # the kubelet thread marks pods ready
            steps.append(count)
        elapsed = time.perf_counter() - started
        running = Deployment.objects.filter(status="running").count()
        calls = [cluster.api_calls(namespace=d.namespace) for d in deployments]
        shared = watch_calls + cluster.api_calls(namespace="")  # the watch cache's, for the whole cluster
        # One apply per object of a running deployment (its certificate's Secret included).
        minimum = len(render(provisioning.desired_cluster_spec(Deployment.objects.get(pk=deployments[0].pk))))
        print(f"bench provisioning: {COUNT} deployments of {spec.id} ({spec.replicas} nodes) in {elapsed:.1f} s, "
              f"{running} running")
        print(f"  Kubernetes API calls per deployment: mean {statistics.mean(calls):.1f}, max {max(calls)}; "
              f"minimum {minimum} (one apply per object) -> {statistics.mean(calls) / minimum:.2f}x the minimum; "
              f"plus {shared} cluster-wide calls of the watch cache for all {COUNT}")
        print(f"  converge steps per deployment: mean {statistics.mean(steps):.1f}")

        core = k8s_client.CoreV1Api(cluster.api_client())
        sample = deployments[: min(50, COUNT)]
        baseline = median_seconds("baseline: GET one namespace", lambda: core.read_namespace(sample[0].namespace),
                                  rounds=200)
        index = iter(range(10**9))
        reconcile = median_seconds(
            "reconcile one settled deployment (re-apply all objects)",
            lambda: provisioning.repair(sample[next(index) % len(sample)].id), rounds=len(sample) * 2, warmup=5)
        print(f"  reconcile per deployment: {reconcile * 1000:.1f} ms = {reconcile / baseline:.1f}x one API GET")
        measure_drift_pass(cluster, deployments, minimum)
    forget_clients()
    measure_scaling_windows()
    return 0


def measure_drift_pass(cluster, deployments: list, objects_per_deployment: int) -> None:
    """The beat job's pass over the region's settled deployments, all unchanged: its Kubernetes calls and
    writes against what the previous reconciler made (a forced apply of every object of every deployment,
    ``objects_per_deployment`` each); then the same pass after one Service of one deployment was deleted by
    hand."""
    import contextlib

    from deployments import provisioning

    @contextlib.contextmanager
    def free(_: str):
        yield True

    count = len(deployments)
    cluster.reset_api_calls()
    started = time.perf_counter()
    report = provisioning.repair_region("aws-us-east-1", lock=free)
    elapsed = time.perf_counter() - started
    calls, writes = cluster.api_calls(), cluster.api_calls(method="PATCH")
    before = count * objects_per_deployment
    print(f"  drift pass over {report.checked} unchanged deployments: {calls} API calls ({calls / count:.3f} per "
          f"deployment), {writes} writes, in {elapsed:.2f} s; the per-deployment re-apply it replaces: {before} "
          f"calls and {before} writes ({objects_per_deployment} per deployment)")
    cluster.vanish("services", deployments[0].namespace, "emqx-public")
    cluster.reset_api_calls()
    report = provisioning.repair_region("aws-us-east-1", lock=free)
    print(f"  the same pass after a Service was deleted by hand: {cluster.api_calls()} API calls, "
          f"{cluster.api_calls(method='PATCH')} write(s), {report.repaired} deployment repaired")


def drive(deployment_id: str) -> None:
    from deployments import provisioning

    while provisioning.deployment_converge_once(deployment_id).again_in is not None:
        time.sleep(0.01)


def measure_scaling_windows() -> None:
    """The client disconnect window of a resize, from the simulator's pod readiness timeline: how long no
    node was ready (every client disconnected) and how long the cluster ran short of nodes."""
    from django.test import override_settings

    from k8s.clusters import forget_clients
    from k8s.simulator import SimulatedCluster

    ready_delay = float(os.environ.get("BENCH_READY_DELAY", "0.5"))
    print(f"bench scaling windows (each new node takes {ready_delay} s to become ready):")
    with benchmark_database("mqcloud_bench_scaling"), SimulatedCluster(ready_delay_s=ready_delay) as cluster, \
            override_settings(KUBERNETES_SIMULATOR_URL=cluster.url, KUBERNETES_CLUSTERS={},
                              DEPLOYMENT_POLL_SECONDS=0, KUBERNETES_CLIENT_QPS=0):  # calls counted, not paced
        forget_clients()
        from deployments import services
        from deployments.models import Deployment, Region, Spec
        from projects.tenancy import Principal
        from projects.tests.factories import OrganizationFactory, ProjectFactory

        organization = OrganizationFactory()
        project = ProjectFactory(organization=organization)
        principal = Principal.for_system(organization)
        region = Region.objects.get(id="aws-us-east-1")
        for name, before, after in (("single node", "basic-1k", "basic-5k"), ("three nodes", "pro-10k", "pro-50k")):
            spec = Spec.objects.get(id=before)
            deployment = Deployment.objects.create(
                organization=organization, project=project, name=name.replace(" ", "-"), region=region, spec=spec,
                target_spec=spec, tier=spec.tier, node_cookie="c", dashboard_password="p")
            drive(deployment.id)
            started = time.time()
            services.deployment_scale(principal=principal, deployment=deployment, spec=Spec.objects.get(id=after))
            drive(deployment.id)
            took = time.time() - started
            nodes = spec.replicas
            outage = cluster.state.ready_below_seconds(deployment.namespace, 1, since=started, prefix="emqx-")
            short = cluster.state.ready_below_seconds(deployment.namespace, nodes, since=started, prefix="emqx-")
            print(f"  {name:<12} {before} -> {after}: took {took:5.2f} s; no node ready for {outage:.3f} s; "
                  f"fewer than {nodes} node(s) ready for {short:.2f} s ({short / took:.0%} of the resize)")
    forget_clients()


if __name__ == "__main__":
    sys.exit(main())
