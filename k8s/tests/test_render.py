"""The rendered Kubernetes objects, field by field (pure: no cluster)."""

from __future__ import annotations

from k8s.render import BrokerClusterSpec, emqx_config, manifest_digest, render


def spec(**overrides) -> BrokerClusterSpec:
    values = dict(
        namespace="mq-abc", name="emqx", organization_id="org_1", project_id="prj_1", deployment_id="dep_abc",
        tier="professional", replicas=3, cpu_millicores=2000, memory_mib=4096, max_connections=10000,
        image="emqx/emqx:5.8.6", node_cookie="cookie", dashboard_password="pw",
    )
    return BrokerClusterSpec(**(values | overrides))


def by_kind(objects: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for obj in objects:
        out.setdefault(obj["kind"], []).append(obj)
    return out


def test_renders_every_object_in_apply_order_with_tenant_labels():
    objects = render(spec())
    assert [o["kind"] for o in objects] == [
        "Namespace", "ResourceQuota", "NetworkPolicy", "ConfigMap", "Secret", "Service", "Service",
        "PodDisruptionBudget", "StatefulSet",
    ]
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels["mqcloud.io/organization"] == "org_1"
        assert labels["mqcloud.io/project"] == "prj_1"
        assert labels["mqcloud.io/deployment"] == "dep_abc"
        assert labels["app.kubernetes.io/managed-by"] == "mqcloud"
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == "mq-abc"


def test_statefulset_fields():
    sts = by_kind(render(spec()))["StatefulSet"][0]
    assert sts["apiVersion"] == "apps/v1"
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["serviceName"] == "emqx-headless"
    assert sts["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/instance": "emqx",
                                                       "mqcloud.io/deployment": "dep_abc"}}
    assert sts["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    template = sts["spec"]["template"]
    assert template["metadata"]["labels"]["app.kubernetes.io/instance"] == "emqx"
    container = template["spec"]["containers"][0]
    assert container["image"] == "emqx/emqx:5.8.6"
    assert container["resources"] == {"requests": {"cpu": "2000m", "memory": "4096Mi"},
                                      "limits": {"cpu": "2000m", "memory": "4096Mi"}}
    assert container["readinessProbe"]["httpGet"] == {"path": "/status", "port": 18083}
    assert container["livenessProbe"]["httpGet"] == {"path": "/status", "port": 18083}
    assert "--evacuation" in container["lifecycle"]["preStop"]["exec"]["command"]
    assert {p["containerPort"] for p in container["ports"]} == {1883, 8883, 8083, 8084, 4370, 5369, 18083}
    env = {e["name"]: e for e in container["env"]}
    assert env["EMQX_NODE__NAME"]["value"] == "emqx@$(POD_NAME).emqx-headless.mq-abc.svc.cluster.local"
    assert env["EMQX_NODE__COOKIE"]["valueFrom"]["secretKeyRef"] == {"name": "emqx-bootstrap", "key": "node_cookie"}
    assert template["spec"]["terminationGracePeriodSeconds"] == 120
    claim = sts["spec"]["volumeClaimTemplates"][0]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"


def test_services_pdb_quota_and_secret():
    kinds = by_kind(render(spec()))
    headless, public = kinds["Service"]
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True
    assert public["spec"]["type"] == "LoadBalancer"
    assert {p["name"]: p["port"] for p in public["spec"]["ports"]} == {"mqtt": 1883, "mqtts": 8883, "ws": 8083,
                                                                      "wss": 8084}
    assert kinds["PodDisruptionBudget"][0]["spec"]["maxUnavailable"] == 1
    hard = kinds["ResourceQuota"][0]["spec"]["hard"]
    assert hard["pods"] == "4" and hard["limits.cpu"] == "8000m" and hard["limits.memory"] == "16384Mi"
    assert kinds["Secret"][0]["stringData"] == {"node_cookie": "cookie", "dashboard_password": "pw"}


def test_network_policy_isolates_tenants():
    policy = by_kind(render(spec()))["NetworkPolicy"][0]["spec"]
    assert policy["podSelector"] == {} and policy["policyTypes"] == ["Ingress"]
    public, cluster, control_plane = policy["ingress"]
    assert "from" not in public and {p["port"] for p in public["ports"]} == {1883, 8883, 8083, 8084}
    assert cluster["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "emqx",
                                                                  "mqcloud.io/deployment": "dep_abc"}}}]
    assert control_plane["ports"] == [{"protocol": "TCP", "port": 18083}]


def test_emqx_config_uses_dns_discovery_and_spec_limits():
    config = emqx_config(spec())
    assert 'dns { name = "emqx-headless.mq-abc.svc.cluster.local", record_type = srv }' in config
    assert 'listeners.tcp.default { bind = "0.0.0.0:1883", max_connections = 10000 }' in config


def test_surge_and_stop_variants():
    surge = by_kind(render(spec(replicas=1, surge_replicas=2, partition=1)))["StatefulSet"][0]
    assert surge["spec"]["replicas"] == 2
    assert surge["spec"]["updateStrategy"]["rollingUpdate"]["partition"] == 1
    stopped = by_kind(render(spec(replicas=0)))["StatefulSet"][0]
    assert stopped["spec"]["replicas"] == 0


def test_a_config_change_rolls_the_pods_and_rendering_is_deterministic():
    base = render(spec())
    assert manifest_digest(base) == manifest_digest(render(spec()))
    changed = render(spec(max_connections=20000))
    annotation = "mqcloud.io/config-hash"
    assert (by_kind(base)["StatefulSet"][0]["spec"]["template"]["metadata"]["annotations"][annotation]
            != by_kind(changed)["StatefulSet"][0]["spec"]["template"]["metadata"]["annotations"][annotation])
