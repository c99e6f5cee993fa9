#!/usr/bin/env python
"""Provisioning N deployments in the simulated cluster: Kubernetes API calls per deployment against the
minimum (one apply per rendered object), and the time to reconcile one settled deployment against a
baseline measured in the same run (one GET of a namespace through the same client).

The workers' logic runs in-process (provisioning.converge, as the Celery task calls it) so the numbers
are about our code and the API traffic, not about queue latency.
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
                              DEPLOYMENT_POLL_SECONDS=0):
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
        minimum = len(render(provisioning.desired_cluster_spec(deployments[0])))
        cluster.reset_api_calls()

        steps, started = [], time.perf_counter()
        for deployment in deployments:
            count = 0
            while True:
                count += 1
                step = provisioning.converge(deployment.id)
                if step.again_in is None:
                    break
                time.sleep(0.002)  # the kubelet thread marks pods ready
            steps.append(count)
        elapsed = time.perf_counter() - started
        running = Deployment.objects.filter(status="running").count()
        calls = [cluster.api_calls(namespace=d.namespace) for d in deployments]
        print(f"bench provisioning: {COUNT} deployments of {spec.id} ({spec.replicas} nodes) in {elapsed:.1f} s, "
              f"{running} running")
        print(f"  Kubernetes API calls per deployment: mean {statistics.mean(calls):.1f}, max {max(calls)}; "
              f"minimum {minimum} (one apply per object) -> {statistics.mean(calls) / minimum:.2f}x the minimum")
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
    forget_clients()
    return 0


if __name__ == "__main__":
    sys.exit(main())
