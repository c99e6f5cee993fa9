"""The simulated API server as the official client sees it: CRUD, server-side apply, patches, selectors,
preconditions, validation, discovery and watch."""

from __future__ import annotations

import json
import threading

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

from .sim_helpers import APPLY, apply_sts, statefulset


def _error(exc: ApiException) -> dict:
    return json.loads(exc.body)


def test_namespace_create_conflict_and_defaults(core):
    created = core.create_namespace({"metadata": {"name": "tenant-x"}})
    assert created.status.phase == "Active"
    assert created.metadata.uid and created.metadata.creation_timestamp and int(created.metadata.resource_version)
    assert created.metadata.labels["kubernetes.io/metadata.name"] == "tenant-x"
    with pytest.raises(ApiException) as exc:
        core.create_namespace({"metadata": {"name": "tenant-x"}})
    assert exc.value.status == 409
    assert _error(exc.value)["reason"] == "AlreadyExists"
    assert {"default", "kube-system", "tenant-x"} <= {n.metadata.name for n in core.list_namespace().items}


def test_create_in_missing_namespace_is_404(core):
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("nowhere", {"metadata": {"name": "c"}})
    assert exc.value.status == 404
    assert _error(exc.value)["message"] == 'namespaces "nowhere" not found'


def test_get_missing_object_is_not_found_status(core, ns):
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_config_map("missing", ns)
    body = _error(exc.value)
    assert (exc.value.status, body["kind"], body["reason"], body["code"]) == (404, "Status", "NotFound", 404)


def test_server_side_apply_creates_then_is_idempotent(apps, core, ns):
    first = apply_sts(apps, ns, statefulset())
    assert first.metadata.generation == 1 and first.metadata.uid
    [entry] = first.metadata.managed_fields
    assert (entry.manager, entry.operation) == ("mqcloud", "Apply")
    assert "f:replicas" in entry.fields_v1["f:spec"]
    assert 'k:{"name":"emqx"}' in entry.fields_v1["f:spec"]["f:template"]["f:spec"]["f:containers"]

    # A ConfigMap has no controller writing status, so any resourceVersion bump would be the apply's.
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "emqx-conf"}, "data": {"a": "1"}}
    created = core.patch_namespaced_config_map("emqx-conf", ns, cm, field_manager="mqcloud", force=True,
                                               _content_type=APPLY)
    again = core.patch_namespaced_config_map("emqx-conf", ns, cm, field_manager="mqcloud", force=True,
                                             _content_type=APPLY)
    assert again.metadata.resource_version == created.metadata.resource_version
    assert again.metadata.managed_fields[0].time == created.metadata.managed_fields[0].time

    again_sts = apply_sts(apps, ns, statefulset())
    assert again_sts.metadata.generation == 1


def test_apply_without_field_manager_is_400(apps, ns):
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_stateful_set("broker", ns, statefulset(), _content_type=APPLY)
    assert exc.value.status == 400


def test_apply_conflicts_between_managers_unless_forced(apps, ns):
    apply_sts(apps, ns, statefulset(replicas=3))
    with pytest.raises(ApiException) as exc:
        apply_sts(apps, ns, statefulset(replicas=5), manager="autoscaler", force=False)
    assert exc.value.status == 409
    assert 'conflict with "mqcloud"' in _error(exc.value)["message"]
    assert ".spec.replicas" in _error(exc.value)["message"]

    # Same value: shared ownership, no conflict.
    apply_sts(apps, ns, statefulset(replicas=3), manager="autoscaler", force=False)
    forced = apply_sts(apps, ns, statefulset(replicas=5), manager="autoscaler", force=True)
    assert forced.spec.replicas == 5
    assert forced.metadata.generation == 2
    with pytest.raises(ApiException) as exc:
        apply_sts(apps, ns, statefulset(replicas=3), force=False)
    assert 'conflict with "autoscaler"' in _error(exc.value)["message"]


def test_hand_edit_takes_ownership_so_next_apply_conflicts(cluster, apps, ns):
    apply_sts(apps, ns, statefulset(image="emqx/emqx:5.8.0"))
    cluster.edit("statefulsets", ns, "broker",
                 {"spec": {"template": {"spec": {"containers": [{"name": "emqx", "image": "hacked"}]}}}})
    with pytest.raises(ApiException) as exc:
        apply_sts(apps, ns, statefulset(image="emqx/emqx:5.8.1"), force=False)
    assert 'conflict with "kubectl-edit" using apps/v1' in _error(exc.value)["message"]
    fixed = apply_sts(apps, ns, statefulset(image="emqx/emqx:5.8.1"), force=True)
    assert fixed.spec.template.spec.containers[0].image == "emqx/emqx:5.8.1"


def test_apply_removes_fields_the_manager_no_longer_sets(apps, ns):
    body = statefulset(labels={"tier": "basic"})
    body["spec"]["template"]["spec"]["containers"].append({"name": "exporter", "image": "exporter:1"})
    apply_sts(apps, ns, body)
    result = apply_sts(apps, ns, statefulset())
    assert "tier" not in result.metadata.labels
    assert [c.name for c in result.spec.template.spec.containers] == ["emqx"]
    assert result.spec.pod_management_policy == "OrderedReady"  # defaults are nobody's and stay


def test_merge_patch_and_strategic_merge_by_name(apps, ns):
    body = statefulset()
    body["spec"]["template"]["spec"]["containers"].append({"name": "exporter", "image": "exporter:1"})
    apply_sts(apps, ns, body)
    merged = apps.patch_namespaced_stateful_set("broker", ns, {"metadata": {"labels": {"team": "ops"}}},
                                                _content_type="application/merge-patch+json")
    assert merged.metadata.labels == {"app": "broker", "team": "ops"}
    assert merged.metadata.generation == 1  # metadata only: generation stays

    # The client's default for a dict body is a strategic merge patch: containers and env merge by name.
    strategic = apps.patch_namespaced_stateful_set("broker", ns, {"spec": {"template": {"spec": {"containers": [
        {"name": "emqx", "image": "emqx/emqx:5.9.0", "env": [{"name": "EMQX_LOG__LEVEL", "value": "debug"}]}]}}}})
    containers = {c.name: c for c in strategic.spec.template.spec.containers}
    assert containers["emqx"].image == "emqx/emqx:5.9.0" and containers["exporter"].image == "exporter:1"
    assert [e.name for e in containers["emqx"].env] == ["EMQX_NODE__COOKIE", "EMQX_LOG__LEVEL"]
    assert strategic.metadata.generation == 2

    patched = apps.patch_namespaced_stateful_set("broker", ns, [
        {"op": "replace", "path": "/spec/replicas", "value": 1}])  # a list body is sent as a JSON patch
    assert patched.spec.replicas == 1


def test_replace_with_stale_resource_version_conflicts(core, ns):
    cm = core.create_namespaced_config_map(ns, {"metadata": {"name": "c"}, "data": {"k": "1"}})
    cm.data = {"k": "2"}
    updated = core.replace_namespaced_config_map("c", ns, cm)
    assert int(updated.metadata.resource_version) > int(cm.metadata.resource_version)
    cm.data = {"k": "3"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_config_map("c", ns, cm)
    assert exc.value.status == 409 and _error(exc.value)["reason"] == "Conflict"
    assert core.read_namespaced_config_map("c", ns).data == {"k": "2"}


@pytest.mark.parametrize("patch", [
    {"spec": {"serviceName": "other"}},
    {"spec": {"selector": {"matchLabels": {"app": "broker", "x": "y"}}}},
    {"spec": {"podManagementPolicy": "Parallel"}},
    {"spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]}},
])
def test_immutable_statefulset_fields_are_422(apps, ns, patch):
    apply_sts(apps, ns, statefulset())
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_stateful_set("broker", ns, patch, _content_type="application/merge-patch+json")
    assert exc.value.status == 422 and _error(exc.value)["reason"] == "Invalid"
    assert "Forbidden: updates to statefulset spec" in _error(exc.value)["message"]


def test_invalid_statefulsets_are_422(apps, ns):
    no_selector = statefulset()
    del no_selector["spec"]["selector"]
    mismatched = statefulset()
    mismatched["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    for body, field in ((no_selector, "spec.selector"), (mismatched, "spec.template.metadata.labels")):
        with pytest.raises(ApiException) as exc:
            apps.create_namespaced_stateful_set(ns, body)
        assert exc.value.status == 422
        assert field in [c["field"] for c in _error(exc.value)["details"]["causes"]]


def test_label_and_field_selectors(core, ns):
    for name, labels in (("a", {"app": "emqx", "tier": "basic"}), ("b", {"app": "emqx", "tier": "pro"}),
                         ("c", {"app": "auth"})):
        core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": labels}})

    def names(**kw):
        return [c.metadata.name for c in core.list_namespaced_config_map(ns, **kw).items]

    assert names(label_selector="app=emqx") == ["a", "b"]
    assert names(label_selector="app==emqx,tier!=basic") == ["b"]
    assert names(label_selector="tier in (basic, pro),app notin (auth)") == ["a", "b"]
    assert names(label_selector="!tier") == ["c"]
    assert names(label_selector="tier") == ["a", "b"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.name!=b", label_selector="app=emqx") == ["a"]
    everywhere = core.list_config_map_for_all_namespaces(field_selector=f"metadata.namespace={ns}")
    assert len(everywhere.items) == 3


def test_scale_subresource(apps, ns):
    apply_sts(apps, ns, statefulset(replicas=2))
    scale = apps.read_namespaced_stateful_set_scale("broker", ns)
    assert scale.spec.replicas == 2 and scale.status.selector == "app=broker"
    apps.patch_namespaced_stateful_set_scale("broker", ns, {"spec": {"replicas": 4}})
    assert apps.read_namespaced_stateful_set("broker", ns).spec.replicas == 4
    scale = apps.read_namespaced_stateful_set_scale("broker", ns)
    scale.spec.replicas = 1
    scale.metadata.resource_version = None  # unconditional: the controller keeps bumping it with status writes
    assert apps.replace_namespaced_stateful_set_scale("broker", ns, scale).spec.replicas == 1


def test_other_resource_types_round_trip(api, core, ns):
    secret = core.create_namespaced_secret(ns, {"metadata": {"name": "s"}, "stringData": {"password": "pw"}})
    assert secret.data == {"password": "cHc="} and secret.string_data is None and secret.type == "Opaque"
    svc = core.create_namespaced_service(ns, {"metadata": {"name": "mqtt"}, "spec": {
        "selector": {"app": "broker"}, "ports": [{"name": "mqtt", "port": 1883}]}})
    assert svc.spec.cluster_ip and svc.spec.ports[0].target_port == 1883
    svc.spec.cluster_ip = None  # a PUT without clusterIP keeps the allocated one
    assert core.replace_namespaced_service("mqtt", ns, svc).spec.cluster_ip
    core.create_namespaced_resource_quota(ns, {"metadata": {"name": "q"}, "spec": {"hard": {"pods": "10"}}})
    pdb = client.PolicyV1Api(api).create_namespaced_pod_disruption_budget(ns, {
        "metadata": {"name": "broker"}, "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "b"}}}})
    assert pdb.status.disruptions_allowed == 0
    net = client.NetworkingV1Api(api)
    net.create_namespaced_network_policy(ns, {"metadata": {"name": "deny"}, "spec": {"podSelector": {}}})
    assert [p.metadata.name for p in net.list_namespaced_network_policy(ns).items] == ["deny"]
    status = net.delete_namespaced_network_policy("deny", ns)
    assert status.status == "Success"
    assert net.list_namespaced_network_policy(ns).items == []
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod(ns, {"metadata": {"name": "p"}, "spec": {"containers": []}})
    assert exc.value.status == 405  # pods belong to the simulated kubelet


def test_dynamic_client_discovers_and_uses_resources(api, ns, tmp_path):
    dyn = DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))
    sts = dyn.resources.get(api_version="apps/v1", kind="StatefulSet")
    sts.create(body=statefulset(replicas=1), namespace=ns)
    assert sts.get(namespace=ns, name="broker").spec.replicas == 1
    cm = dyn.resources.get(api_version="v1", kind="ConfigMap")
    cm.server_side_apply(body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": ns},
                               "data": {"k": "v"}}, field_manager="mqcloud", namespace=ns)
    assert cm.get(namespace=ns, name="c").data.to_dict() == {"k": "v"}
    pdbs = dyn.resources.get(api_version="policy/v1", kind="PodDisruptionBudget")
    assert pdbs.get(namespace=ns).items == []


def test_watch_replays_from_resource_version_and_streams_live(core, ns):
    start = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, {"metadata": {"name": "w", "labels": {"app": "x"}}, "data": {"k": "1"}})
    core.patch_namespaced_config_map("w", ns, {"data": {"k": "2"}})
    core.create_namespaced_config_map(ns, {"metadata": {"name": "other"}})
    core.delete_namespaced_config_map("w", ns)
    events = [(e["type"], e["object"].metadata.name) for e in watch.Watch().stream(
        core.list_namespaced_config_map, ns, label_selector="app=x", resource_version=start, timeout_seconds=1)]
    assert events == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]

    seen: list[tuple[str, str]] = []
    watcher = watch.Watch()

    def consume():
        for e in watcher.stream(core.list_namespaced_config_map, ns, timeout_seconds=5):
            seen.append((e["type"], e["object"].metadata.name))
            if e["object"].metadata.name == "zz-live":
                watcher.stop()

    thread = threading.Thread(target=consume)
    thread.start()
    core.create_namespaced_config_map(ns, {"metadata": {"name": "zz-live"}})
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert ("ADDED", "other") in seen and seen[-1] == ("ADDED", "zz-live")  # initial state, then live changes


def test_watch_from_compacted_resource_version_is_410(cluster, core, ns):
    old = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, {"metadata": {"name": "c"}})
    cluster.state.compact()
    with pytest.raises(ApiException) as exc:
        list(watch.Watch().stream(core.list_namespaced_config_map, ns, resource_version=old, timeout_seconds=1))
    assert exc.value.status == 410


def test_the_rendered_network_policy_with_egress_is_applied_and_read_back(api, ns):
    from k8s.render import render
    from k8s.tests.test_render import spec

    [policy] = [o for o in render(spec(namespace=ns, peered_cidrs=("10.1.0.0/16",), internal_cidrs=("10.1.4.0/24",)))
                if o["kind"] == "NetworkPolicy"]
    net = client.NetworkingV1Api(api)
    net.patch_namespaced_network_policy("tenant-isolation", ns, policy, field_manager="mqcloud", force=True,
                                        _content_type=APPLY)
    stored = net.read_namespaced_network_policy("tenant-isolation", ns)  # through the client's typed models
    assert stored.spec.policy_types == ["Ingress", "Egress"]
    dns, peers, peering, public = stored.spec.egress
    assert dns.to[0].pod_selector.match_labels == {"k8s-app": "kube-dns"}
    assert [(p.protocol, p.port) for p in dns.ports] == [("UDP", 53), ("TCP", 53)]
    assert peering.to[0].ip_block.cidr == "10.1.0.0/16" and peering.to[0].ip_block._except == ["10.1.4.0/24"]
    assert [peer.ip_block.cidr for peer in public.to] == ["0.0.0.0/0", "::/0"]
    assert "169.254.0.0/16" in public.to[0].ip_block._except


EXCEPT_0 = "spec.egress[0].to[0].ipBlock.except[0]"


@pytest.mark.parametrize(("egress", "field"), [
    ([{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["192.168.0.0/16"]}}]}], EXCEPT_0),
    ([{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8"]}}]}], EXCEPT_0),
    ([{"to": [{"ipBlock": {"cidr": "::/0", "except": ["10.0.0.0/8"]}}]}], EXCEPT_0),
    ([{"to": [{"ipBlock": {"cidr": "10.0.0.300/8"}}]}], "spec.egress[0].to[0].ipBlock.cidr"),
    ([{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}], "spec.egress[0].to[0]"),
    ([{"to": [{}]}], "spec.egress[0].to[0]"),
    ([{"ports": [{"protocol": "ICMP", "port": 53}]}], "spec.egress[0].ports[0].protocol"),
    ([{"ports": [{"protocol": "TCP", "port": 70000}]}], "spec.egress[0].ports[0].port"),
])
def test_invalid_network_policies_are_422(api, ns, egress, field):
    net = client.NetworkingV1Api(api)
    with pytest.raises(ApiException) as exc:
        net.create_namespaced_network_policy(ns, {"metadata": {"name": "bad"}, "spec": {
            "podSelector": {}, "policyTypes": ["Egress"], "egress": egress}})
    assert exc.value.status == 422
    assert field in [c["field"] for c in _error(exc.value)["details"]["causes"]]


def test_unknown_policy_types_are_422(api, ns):
    with pytest.raises(ApiException) as exc:
        client.NetworkingV1Api(api).create_namespaced_network_policy(ns, {"metadata": {"name": "bad"}, "spec": {
            "podSelector": {}, "policyTypes": ["Outbound"]}})
    assert exc.value.status == 422 and "spec.policyTypes[0]" in exc.value.body
