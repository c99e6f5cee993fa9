#!/usr/bin/env python
"""Provisioning N deployments in the simulated cluster: Kubernetes API calls per deployment against the
minimum (one apply per rendered object), and the time to reconcile one settled deployment against a
baseline measured in the same run (one GET of a namespace through the same client).

The workers' logic runs in-process (provisioning.deployment_converge_once, as the Celery task calls it) so the
numbers are about our code and the API traffic, not about queue latency.

``--drift-only N`` (or ``BENCH_DRIFT_DEPLOYMENTS=N``) measures only the reconciler's drift pass, over a fleet of N
running deployments too large to provision one by one through the converge path (~1 s each here): their rows are
bulk-created as running, and their objects, certificates included, are applied by the product's own repair
(``provisioning.repair``, what the beat job does to a deployment whose objects are all missing). The first pass
after that must find nothing to do; the bench fails otherwise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from harness import benchmark_database, median_seconds

REGION = "aws-us-east-1"
SPEC = "pro-1k"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=int(os.environ.get("BENCH_DEPLOYMENTS", "200")),
                        help="deployments provisioned through the converge path")
    parser.add_argument("--drift-only", type=int, default=int(os.environ.get("BENCH_DRIFT_DEPLOYMENTS", "0")),
                        metavar="N", help="only the drift pass, over N running deployments seeded in bulk")
    parser.add_argument("--database", default="mqcloud_bench_provisioning", help="the throwaway database's name")
    parser.add_argument("--scaling-database", default="mqcloud_bench_scaling")
    args = parser.parse_args(argv)
    if args.drift_only:
        drift_only(args.drift_only, args.database)
    else:
        provision(args.deployments, args.database)
        measure_scaling_windows(args.scaling_database)
    return 0


def against(cluster, **extra):
    """The settings that point the product at the simulated cluster, its calls counted, not paced."""
    from django.test import override_settings

    return override_settings(KUBERNETES_SIMULATOR_URL=cluster.url, KUBERNETES_CLUSTERS={},
                             DEPLOYMENT_POLL_SECONDS=0, KUBERNETES_CLIENT_QPS=0, **extra)


def provision(count: int, database: str) -> None:
    from k8s.clusters import forget_clients
    from k8s.simulator import SimulatedCluster

    with benchmark_database(database), SimulatedCluster(ready_delay_s=0.0) as cluster, \
            against(cluster, KUBERNETES_WATCH_CACHE=True):  # as outside the test profile
        forget_clients()
        from kubernetes import client as k8s_client

        from deployments import provisioning
        from deployments.models import Deployment, Region, Spec
        from k8s.render import render
        from projects.tests.factories import OrganizationFactory, ProjectFactory

        organization = OrganizationFactory()
        project = ProjectFactory(organization=organization)
        region, spec = Region.objects.get(id=REGION), Spec.objects.get(id=SPEC)
        deployments = [
            Deployment.objects.create(organization=organization, project=project, name=f"d{i}", region=region,
                                      spec=spec, target_spec=spec, tier=spec.tier, node_cookie="c",
                                      dashboard_password="p")
            for i in range(count)
        ]
        from k8s.clusters import watch_for_region

        cache = watch_for_region(REGION)
        while cache is not None and not cache.synced:
            time.sleep(0.01)
        watch_calls = cluster.api_calls()  # its LIST and WATCH per kind, once for every deployment to come
        cluster.reset_api_calls()

        steps, started = [], time.perf_counter()
        for deployment in deployments:
            tries = 0
            while True:
                tries += 1
                step = provisioning.deployment_converge_once(deployment.id)
                if step.again_in is None:
                    break
                time.sleep(0.002)  # the kubelet thread marks pods ready
            steps.append(tries)
        elapsed = time.perf_counter() - started
        running = Deployment.objects.filter(status="running").count()
        calls = [cluster.api_calls(namespace=d.namespace) for d in deployments]
        shared = watch_calls + cluster.api_calls(namespace="")  # the watch cache's, for the whole cluster
        # One apply per object of a running deployment (its certificate's Secret included).
        minimum = len(render(provisioning.desired_cluster_spec(Deployment.objects.get(pk=deployments[0].pk))))
        print(f"bench provisioning: {count} deployments of {spec.id} ({spec.replicas} nodes) in {elapsed:.1f} s, "
              f"{running} running")
        print(f"  Kubernetes API calls per deployment: mean {statistics.mean(calls):.1f}, max {max(calls)}; "
              f"minimum {minimum} (one apply per object) -> {statistics.mean(calls) / minimum:.2f}x the minimum; "
              f"plus {shared} cluster-wide calls of the watch cache for all {count}")
        print(f"  converge steps per deployment: mean {statistics.mean(steps):.1f}")

        core = k8s_client.CoreV1Api(cluster.api_client())
        sample = deployments[: min(50, count)]
        baseline = median_seconds("baseline: GET one namespace", lambda: core.read_namespace(sample[0].namespace),
                                  rounds=200)
        index = iter(range(10**9))
        reconcile = median_seconds(
            "reconcile one settled deployment (re-apply all objects)",
            lambda: provisioning.repair(sample[next(index) % len(sample)].id), rounds=len(sample) * 2, warmup=5)
        print(f"  reconcile per deployment: {reconcile * 1000:.1f} ms = {reconcile / baseline:.1f}x one API GET")
        measure_drift_pass(cluster, deployments, minimum)
    forget_clients()


def drift_only(count: int, database: str) -> None:
    """The drift pass alone, over ``count`` running deployments seeded in bulk (see the module's docstring)."""
    from k8s.clusters import forget_clients
    from k8s.simulator import SimulatedCluster

    # No watch cache: neither the seeding's applies nor the pass read it, and it would only follow the
    # seeding's tens of thousands of events on the same two cores.
    with benchmark_database(database), SimulatedCluster(ready_delay_s=0.0) as cluster, \
            against(cluster, KUBERNETES_WATCH_CACHE=False):
        forget_clients()
        from deployments import provisioning
        from deployments.models import Deployment
        from k8s.render import render

        # The simulated controllers rescan every object each tick, holding the store's lock; at thousands of
        # deployments a tick of 20 ms would leave the API server (same process) little else. Slower ticks
        # only delay when pods turn ready, not what they become.
        cluster.kubelet.tick_s = 1.0
        started = time.perf_counter()
        deployments = seed_running(count)
        seeded = time.perf_counter() - started
        calls = cluster.api_calls()
        minimum = len(render(provisioning.desired_cluster_spec(Deployment.objects.get(pk=deployments[0].pk))))
        settle_started = time.perf_counter()
        wait_until_settled(cluster, deployments)
        settled = time.perf_counter() - settle_started
        print(f"bench drift pass: {count} running deployments of {SPEC} seeded in {seeded:.1f} s (rows in bulk, "
              f"then provisioning.repair each: {calls} API calls, {calls / count:.2f} per deployment, minimum "
              f"{minimum}); every pod ready and load balancer addressed {settled:.1f} s later")
        measure_drift_pass(cluster, deployments, minimum, require_clean=True)
    forget_clients()


def seed_running(count: int) -> list:
    """``count`` deployments as the converge path leaves them once running, in bulk: the address the simulated
    load balancer gives, and the certificate generation; then the product's repair applies every object (and
    issues the certificate for that address, its backfill). Not made: the lifecycle's events (nothing in the
    drift pass reads them) and ``applied_objects`` (only the converge path reads it)."""
    from deployments import provisioning
    from deployments.models import Deployment, DeploymentStatus, Region, Spec
    from projects.tests.factories import OrganizationFactory, ProjectFactory

    organization = OrganizationFactory()
    project = ProjectFactory(organization=organization)
    region, spec = Region.objects.get(id=REGION), Spec.objects.get(id=SPEC)
    rows = []
    for i in range(count):
        row = Deployment(organization=organization, project=project, name=f"d{i}", region=region, spec=spec,
                         target_spec=spec, tier=spec.tier, node_cookie="c", dashboard_password="p",
                         status=DeploymentStatus.RUNNING, desired_generation=2)  # 2: the certificate's apply
        row.endpoints = provisioning._endpoints(simulated_load_balancer_host(row.namespace))  # as converge sets them
        rows.append(row)
    Deployment.objects.bulk_create(rows, batch_size=1000)
    started = time.perf_counter()
    for done, row in enumerate(rows, 1):
        provisioning.repair(row.id)
        if done % 1000 == 0 or done == count:
            print(f"  seeded {done}/{count} in {time.perf_counter() - started:.0f} s", flush=True)
    return rows


def simulated_load_balancer_host(namespace: str) -> str:
    """The address the simulator's load-balancer controller gives the public Service (``k8s.simulator.kubelet``);
    ``wait_until_settled`` checks every Service got exactly it."""
    return f"emqx-public.{namespace}.lb.sim.mqcloud.localhost"


def wait_until_settled(cluster, deployments: list, timeout_s: float = 1800.0) -> None:
    """Until every broker pod is ready and every public Service has the address the deployment's endpoints and
    certificate name: the fleet as the converge path would have left it."""
    from deployments.models import Spec
    from k8s.simulator.resources import PODS, SERVICES
    from k8s.simulator.store import is_ready

    wanted_pods = len(deployments) * Spec.objects.get(id=SPEC).replicas
    hosts = {row.namespace: simulated_load_balancer_host(row.namespace) for row in deployments}
    deadline = time.monotonic() + timeout_s
    while True:
        with cluster.state.lock:
            ready = sum(is_ready(pod) for pod in cluster.state.objects(PODS, copies=False))
            addressed = {svc["metadata"]["namespace"]: ((svc.get("status") or {}).get("loadBalancer") or {})
                         .get("ingress", [{}])[0].get("hostname")
                         for svc in cluster.state.objects(SERVICES, copies=False)
                         if svc["metadata"]["name"] == "emqx-public"}
        if ready == wanted_pods and addressed == hosts:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"not settled after {timeout_s:.0f} s: {ready}/{wanted_pods} pods ready, "
                             f"{sum(addressed.get(ns) == host for ns, host in hosts.items())}/{len(hosts)} "
                             "load balancers addressed as expected")
        time.sleep(1.0)


def measure_drift_pass(cluster, deployments: list, objects_per_deployment: int, *,
                       require_clean: bool = False) -> None:
    """The beat job's pass over the region's settled deployments, all unchanged: its Kubernetes calls and
    writes against what the previous reconciler made (a forced apply of every object of every deployment,
    ``objects_per_deployment`` each); then the same pass after one Service of one deployment was deleted by
    hand. ``require_clean``: fail unless the first pass found no drift and wrote nothing (a seeded fleet)."""
    import contextlib

    from deployments import provisioning

    @contextlib.contextmanager
    def free(_: str):
        yield True

    count = len(deployments)
    cluster.reset_api_calls()
    started = time.perf_counter()
    report = provisioning.repair_region(REGION, lock=free)
    elapsed = time.perf_counter() - started
    calls = cluster.api_calls()
    writes = calls - cluster.api_calls(method="GET")  # anything but a read: an apply, a create, a delete
    drifted = report.repaired + report.busy
    before = count * objects_per_deployment
    print(f"  drift pass over {report.checked} unchanged deployments: {calls} API calls ({calls / count:.4f} per "
          f"deployment), {writes} writes, {drifted} drifted, in {elapsed:.2f} s; the per-deployment re-apply it "
          f"replaces: {before} calls and {before} writes ({objects_per_deployment} per deployment)")
    if require_clean and (writes or drifted or report.checked != count):
        raise SystemExit(f"the seeded fleet is not what the product makes: {report.as_dict()}, {writes} writes")
    cluster.vanish("services", deployments[0].namespace, "emqx-public")
    cluster.reset_api_calls()
    started = time.perf_counter()
    report = provisioning.repair_region(REGION, lock=free)
    elapsed = time.perf_counter() - started
    print(f"  the same pass after a Service was deleted by hand: {cluster.api_calls()} API calls, "
          f"{cluster.api_calls(method='PATCH')} write(s), {report.repaired} deployment repaired, in {elapsed:.2f} s")


def drive(deployment_id: str) -> None:
    from deployments import provisioning

    while provisioning.deployment_converge_once(deployment_id).again_in is not None:
        time.sleep(0.01)


def measure_scaling_windows(database: str) -> None:
    """The client disconnect window of a resize, from the simulator's pod readiness timeline: how long no
    node was ready (every client disconnected) and how long the cluster ran short of nodes."""
    from k8s.clusters import forget_clients
    from k8s.simulator import SimulatedCluster

    ready_delay = float(os.environ.get("BENCH_READY_DELAY", "0.5"))
    print(f"bench scaling windows (each new node takes {ready_delay} s to become ready):")
    with benchmark_database(database), SimulatedCluster(ready_delay_s=ready_delay) as cluster, against(cluster):
        forget_clients()
        from deployments import services
        from deployments.models import Deployment, Region, Spec
        from projects.tenancy import Principal
        from projects.tests.factories import OrganizationFactory, ProjectFactory

        organization = OrganizationFactory()
        project = ProjectFactory(organization=organization)
        principal = Principal.for_system(organization)
        region = Region.objects.get(id=REGION)
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
