"""The simulated kubelet and controllers: ordered readiness, rolling updates from the top ordinal down,
scale-down, load balancers, PDB status and asynchronous namespace deletion."""

from __future__ import annotations

import time

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from .sim_helpers import apply_sts, ready_replicas, statefulset, wait_until


def _pods(core, ns):
    return sorted(p.metadata.name for p in core.list_namespaced_pod(ns, label_selector="app=broker").items)


def test_pods_are_created_in_order_and_become_ready_one_at_a_time(cluster, apps, core, ns):
    apply_sts(apps, ns, statefulset(replicas=3))
    wait_until(lambda: ready_replicas(apps, ns) == 3)
    events = [(e["pod"], e["event"]) for e in cluster.state.pod_events(ns)]
    assert events == [("broker-0", "created"), ("broker-0", "ready"), ("broker-1", "created"),
                      ("broker-1", "ready"), ("broker-2", "created"), ("broker-2", "ready")]
    status = apps.read_namespaced_stateful_set_status("broker", ns).status
    counts = (status.replicas, status.available_replicas, status.current_replicas, status.updated_replicas)
    assert counts == (3, 3, 3, 3)
    assert status.current_revision == status.update_revision and status.observed_generation == 1
    pod = core.read_namespaced_pod("broker-1", ns)
    assert pod.metadata.owner_references[0].kind == "StatefulSet"
    assert pod.metadata.labels["controller-revision-hash"] == status.update_revision
    assert pod.status.phase == "Running" and pod.status.pod_ip


def test_rolling_update_replaces_highest_ordinal_first_one_at_a_time(cluster, apps, ns):
    apply_sts(apps, ns, statefulset(replicas=3))
    wait_until(lambda: ready_replicas(apps, ns) == 3)
    old_revision = apps.read_namespaced_stateful_set("broker", ns).status.current_revision
    started = time.time()
    updated = apply_sts(apps, ns, statefulset(replicas=3, image="emqx/emqx:5.9.0"))
    assert updated.metadata.generation == 2

    def rolled_out():
        # observedGeneration first, as real clients must: until then the status describes the old template.
        s = apps.read_namespaced_stateful_set_status("broker", ns).status
        return (s.observed_generation == 2 and s.updated_replicas == 3 and s.ready_replicas == 3
                and s.current_revision == s.update_revision)

    wait_until(rolled_out)
    status = apps.read_namespaced_stateful_set_status("broker", ns).status
    assert status.current_revision != old_revision and status.observed_generation == 2
    replaced = [e["pod"] for e in cluster.state.pod_events(ns) if e["event"] == "deleted" and e["at"] >= started]
    assert replaced == ["broker-2", "broker-1", "broker-0"]
    # One pod down at a time: never fewer than 2 ready, but short of 3 for about one ready delay per pod.
    finished = time.time()
    assert cluster.state.ready_below_seconds(ns, 2, since=started, until=finished) == 0
    assert cluster.state.ready_below_seconds(ns, 3, since=started, until=finished) >= 3 * 0.1


def test_mid_rollout_status_reports_two_revisions(cluster, apps, ns):
    cluster.kubelet.ready_delay_s = 0.3
    apply_sts(apps, ns, statefulset(replicas=2))
    wait_until(lambda: ready_replicas(apps, ns) == 2)
    apply_sts(apps, ns, statefulset(replicas=2, image="emqx/emqx:5.9.0"))
    status = wait_until(lambda: (s := apps.read_namespaced_stateful_set_status("broker", ns).status)
                        .updated_replicas == 1 and s)
    assert status.current_revision != status.update_revision
    assert status.current_replicas == 1


def test_scale_down_removes_highest_ordinals_and_zero_removes_all(apps, core, ns):
    apply_sts(apps, ns, statefulset(replicas=3))
    wait_until(lambda: ready_replicas(apps, ns) == 3)
    apps.patch_namespaced_stateful_set_scale("broker", ns, {"spec": {"replicas": 1}})
    wait_until(lambda: _pods(core, ns) == ["broker-0"])
    apps.patch_namespaced_stateful_set_scale("broker", ns, {"spec": {"replicas": 0}})
    wait_until(lambda: _pods(core, ns) == [])
    wait_until(lambda: apps.read_namespaced_stateful_set("broker", ns).status.replicas == 0)


def test_parallel_policy_and_terminating_pods(apps, core, ns, cluster):
    cluster.kubelet.terminate_delay_s = 0.2
    body = statefulset(replicas=3)
    body["spec"]["podManagementPolicy"] = "Parallel"
    apply_sts(apps, ns, body)
    assert len(wait_until(lambda: len(_pods(core, ns)) == 3 and _pods(core, ns), timeout=2)) == 3
    wait_until(lambda: ready_replicas(apps, ns) == 3)
    apps.patch_namespaced_stateful_set_scale("broker", ns, {"spec": {"replicas": 2}})
    wait_until(lambda: _pods(core, ns) == ["broker-0", "broker-1"])
    # The condemned pod went unready at once and lingered (Terminating) for the grace period.
    last_two = [e for e in cluster.state.pod_events(ns) if e["pod"] == "broker-2"][-2:]
    assert [e["event"] for e in last_two] == ["not-ready", "deleted"]
    assert last_two[1]["at"] - last_two[0]["at"] >= 0.2


def test_deleted_pod_is_recreated_and_garbage_collected_with_its_statefulset(apps, core, ns):
    apply_sts(apps, ns, statefulset(replicas=2))
    wait_until(lambda: ready_replicas(apps, ns) == 2)
    uid = core.read_namespaced_pod("broker-1", ns).metadata.uid
    core.delete_namespaced_pod("broker-1", ns)

    def replaced():
        pods = core.list_namespaced_pod(ns, field_selector="metadata.name=broker-1").items
        return pods and pods[0].metadata.uid != uid and pods[0].status.conditions[-1].status == "True"

    wait_until(replaced)
    apps.delete_namespaced_stateful_set("broker", ns)
    wait_until(lambda: _pods(core, ns) == [])


def test_blocked_readiness_keeps_pods_unready(cluster, apps, ns):
    cluster.faults.block_readiness(ns, "broker-1")
    apply_sts(apps, ns, statefulset(replicas=3))
    wait_until(lambda: ready_replicas(apps, ns) == 1)
    time.sleep(0.3)  # three ready delays: OrderedReady must not move past the stuck pod
    assert ready_replicas(apps, ns) == 1
    cluster.faults.unblock_readiness(ns, "broker-1")
    wait_until(lambda: ready_replicas(apps, ns) == 3)


def test_load_balancer_service_gets_an_ingress_hostname(core, ns):
    core.create_namespaced_service(ns, {"metadata": {"name": "mqtt-public"}, "spec": {
        "type": "LoadBalancer", "selector": {"app": "broker"}, "ports": [{"name": "mqtts", "port": 8883}]}})
    svc = wait_until(lambda: (s := core.read_namespaced_service_status("mqtt-public", ns)).status.load_balancer.ingress
                     and s)
    assert svc.status.load_balancer.ingress[0].hostname == f"mqtt-public.{ns}.lb.sim.mqcloud.localhost"
    assert svc.spec.ports[0].node_port


def test_pdb_status_follows_ready_pods(api, apps, ns):
    policy = client.PolicyV1Api(api)
    policy.create_namespaced_pod_disruption_budget(ns, {"metadata": {"name": "broker"}, "spec": {
        "maxUnavailable": 1, "selector": {"matchLabels": {"app": "broker"}}}})
    apply_sts(apps, ns, statefulset(replicas=3))

    def allowed():
        s = policy.read_namespaced_pod_disruption_budget("broker", ns).status
        return s.current_healthy == 3 and s.expected_pods == 3 and s.desired_healthy == 2 and s.disruptions_allowed == 1

    wait_until(allowed)


def test_namespace_delete_terminates_then_cascades(cluster, core, apps, ns):
    cluster.state.namespace_delete_delay_s = 1.0  # long enough to observe Terminating on a loaded machine
    core.create_namespaced_config_map(ns, {"metadata": {"name": "c"}})
    apply_sts(apps, ns, statefulset(replicas=1))
    status = core.delete_namespace(ns)
    assert status.status == "Success"
    assert core.read_namespace(ns).status.phase == "Terminating"
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "late"}})
    assert exc.value.status == 403 and "being terminated" in exc.value.body

    def gone():
        try:
            core.read_namespace(ns)
        except ApiException as e:
            return e.status == 404
        return False

    wait_until(gone)
    leftovers = core.list_config_map_for_all_namespaces(field_selector=f"metadata.namespace={ns}").items
    assert leftovers == [] and core.list_pod_for_all_namespaces(field_selector=f"metadata.namespace={ns}").items == []
    core.create_namespace({"metadata": {"name": ns}})  # the name is free again
