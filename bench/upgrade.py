#!/usr/bin/env python
"""A version upgrade of a three-node deployment in the simulated cluster (issue 18, item 1), measured from the
simulator's pod readiness timeline: the fewest nodes ready at any moment of the rollout (the promise: at least
two of three, the PodDisruptionBudget's maxUnavailable 1), how long the cluster ran on two, and the time per node.
Then the same for a single node (its surge node: never none ready) and a release that never becomes ready on one
node (rolled back: the fewest ready during the attempt and the rollback, the time to be back on the old version).

The upgrade's steps run in-process (``deployments.upgrades.services.upgrade_step_once``, as the Celery task calls
it), so the numbers are about the rollout, not about queue latency. Exits 1 if a promise is broken.
"""

from __future__ import annotations

import os
import sys
import time

from harness import benchmark_database

READY_DELAY = float(os.environ.get("BENCH_READY_DELAY", "0.5"))
NEW_IMAGE = "emqx/emqx:5.9.1"


def drive(upgrade_id: str) -> None:
    from deployments.upgrades import services

    while (step := services.upgrade_step_once(upgrade_id)).again_in is not None:
        time.sleep(min(step.again_in, 0.02))


def main() -> int:
    from django.test import override_settings

    from k8s.clusters import forget_clients
    from k8s.simulator import SimulatedCluster

    print(f"bench upgrade 5.8.6 -> 5.9.1 (each new node takes {READY_DELAY} s to become ready):")
    broken = 0
    with benchmark_database("mqcloud_bench_upgrade"), SimulatedCluster(ready_delay_s=READY_DELAY) as cluster, \
            override_settings(KUBERNETES_SIMULATOR_URL=cluster.url, KUBERNETES_CLUSTERS={},
                              DEPLOYMENT_POLL_SECONDS=0, KUBERNETES_CLIENT_QPS=0,
                              UPGRADE_NODE_TIMEOUT_SECONDS=max(1, int(READY_DELAY * 4))):
        forget_clients()
        from deployments import provisioning
        from deployments.models import Deployment, Region, Spec
        from deployments.upgrades import services
        from deployments.upgrades.models import DeploymentUpgrade
        from projects.tenancy import Principal
        from projects.tests.factories import OrganizationFactory, ProjectFactory

        organization = OrganizationFactory()
        project = ProjectFactory(organization=organization)
        principal = Principal.for_system(organization)
        region = Region.objects.get(id="aws-us-east-1")
        for name, spec_id, fault in (("three nodes", "pro-10k", False), ("single node", "basic-1k", False),
                                     ("three nodes, node 1 never ready", "pro-10k", True)):
            spec = Spec.objects.get(id=spec_id)
            deployment = Deployment.objects.create(
                organization=organization, project=project, name=f"u{spec.replicas}{'f' if fault else ''}",
                region=region, spec=spec, target_spec=spec, tier=spec.tier, node_cookie="c",
                dashboard_password="p", status="provisioning")
            while provisioning.deployment_converge_once(deployment.id).again_in is not None:
                time.sleep(0.01)
            if fault:
                cluster.faults.block_image_readiness(deployment.namespace, NEW_IMAGE, ordinal=1)
            started = time.time()
            upgrade = services.upgrade_request(principal=principal, deployment=deployment, version="5.9.1")
            drive(upgrade.id)
            took = time.time() - started
            upgrade = DeploymentUpgrade.objects.get(pk=upgrade.id)
            nodes = spec.replicas
            lowest = cluster.state.min_ready(deployment.namespace, since=started, prefix="emqx-")
            short = cluster.state.ready_below_seconds(deployment.namespace, nodes, since=started, prefix="emqx-")
            floor = 1 if nodes == 1 else nodes - 1
            kept = lowest >= floor
            verdict = "kept" if kept else "BROKEN"
            broken += not kept
            print(f"  {name:<32} {upgrade.status:<9} in {took:5.2f} s ({took / nodes:.2f} s per node); fewest "
                  f"nodes ready at any moment: {lowest} of {nodes} (promise >= {floor}: {verdict});"
                  f" fewer than {nodes} ready for {short:.2f} s")
            if fault and upgrade.status != "failed":
                print("  BROKEN: the never-ready node did not end in a rolled-back, failed upgrade")
                broken += 1
    forget_clients()
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
