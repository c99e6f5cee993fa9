"""The Kustomize overlays (deploy/k8s) render, validate against the Kubernetes schemas offline, and hold what
the operations guide promises: every queue has a worker, probes on /readyz and /healthz, limits, hardening,
secrets referenced and never embedded, web reachable from the ingress only."""

from __future__ import annotations

import subprocess

import pytest

from controlplane.queues import QUEUES
from tests.deploy_support import OVERLAYS, deploy_tools, documents, pod_containers, rendered, workloads

# The oldest Kubernetes the manifests support (matchLabelKeys in topology spread is on by default from 1.27)
# and the newest schemas kubernetes-validate ships: an API removed upstream fails here first.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")


def test_overlays_validate_against_the_kubernetes_schemas(tmp_path):
    files = []
    for name, text in rendered().items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        files.append(str(path))
    runs = [subprocess.Popen([str(deploy_tools() / "kubernetes-validate"), "--strict", "--quiet", "--no-warn",
                              "-k", version, *files], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for version in KUBERNETES_VERSIONS]
    for version, run in zip(KUBERNETES_VERSIONS, runs, strict=True):
        output, _ = run.communicate(timeout=120)
        assert run.returncode == 0, f"Kubernetes {version}:\n{output}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_queue_has_exactly_one_worker_deployment(overlay):
    consumed: dict[str, list[str]] = {}
    for doc in workloads(overlay):
        args = doc["spec"]["template"]["spec"]["containers"][0]["args"]
        if args[0] == "worker":
            for queue in args[1:]:
                consumed.setdefault(queue, []).append(doc["metadata"]["name"])
    assert set(consumed) == set(QUEUES), consumed
    assert all(len(names) == 1 for names in consumed.values()), consumed


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workloads_are_hardened_limited_and_probed(overlay):
    for doc in workloads(overlay):
        name = doc["metadata"]["name"]
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert "automountServiceAccountToken" in pod, name
        for container in pod_containers(doc):
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"], name
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), name
            assert {"secretRef": {"name": "mqcloud-secrets"}} in container["envFrom"], name
        if doc["kind"] == "Deployment":
            main = pod["containers"][0]
            assert "readinessProbe" in main and "livenessProbe" in main, name
            # Nothing starts on a schema its code does not expect.
            assert pod["initContainers"][0]["args"] == ["wait-for-migrations"], name
    web = next(doc for doc in workloads(overlay) if doc["metadata"]["name"] == "mqcloud-web")
    main = web["spec"]["template"]["spec"]["containers"][0]
    assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
    job = next(doc for doc in workloads(overlay) if doc["kind"] == "Job")
    assert [c["args"] for c in pod_containers(job)] == [["migrate"], ["sync-catalog"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_referenced_never_embedded_and_only_provisioning_gets_a_token(overlay):
    docs = documents(overlay)
    assert not [doc for doc in docs if doc["kind"] == "Secret"]
    with_token = {doc["metadata"]["name"] for doc in workloads(overlay)
                  if doc["spec"]["template"]["spec"]["automountServiceAccountToken"]}
    assert with_token == {"mqcloud-worker-provisioning"}
    rules = next(doc for doc in docs if doc["kind"] == "ClusterRole")["rules"]
    assert not any("*" in rule["verbs"] or "*" in rule["resources"] for rule in rules)
    assert not any({"escalate", "bind", "impersonate"} & set(rule["verbs"]) for rule in rules)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_web_is_reachable_from_the_ingress_only(overlay):
    policies = [doc for doc in documents(overlay) if doc["kind"] == "NetworkPolicy"]
    deny = next(p for p in policies if p["spec"]["podSelector"] == {})
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in deny["spec"]
    ingress_rules = [rule for p in policies for rule in p["spec"].get("ingress", [])]
    assert len(ingress_rules) == 1
    assert ingress_rules[0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]


def test_ha_scales_on_cpu_and_queue_depth_and_single_node_does_not_scale():
    assert not [doc for doc in documents("single-node") if doc["kind"] == "HorizontalPodAutoscaler"]
    hpas = {doc["spec"]["scaleTargetRef"]["name"]: doc for doc in documents("ha")
            if doc["kind"] == "HorizontalPodAutoscaler"}
    assert set(hpas) == {"mqcloud-web", *(f"mqcloud-worker-{queue}" for queue in QUEUES)}
    for queue in QUEUES:
        metrics = hpas[f"mqcloud-worker-{queue}"]["spec"]["metrics"]
        assert metrics[0]["resource"]["name"] == "cpu"
        assert metrics[1]["external"]["metric"]["selector"]["matchLabels"] == {"queue": queue}
