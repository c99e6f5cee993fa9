"""The rendered Kubernetes objects, field by field (pure: no cluster)."""

from __future__ import annotations

import ipaddress

from controlplane.outbound import BLOCKED_NETWORKS
from k8s.render import BrokerClusterSpec, emqx_config, manifest_digest, render


def spec(**overrides) -> BrokerClusterSpec:
    values = dict(
        namespace="mq-abc", name="emqx", organization_id="org_1", project_id="prj_1", deployment_id="dep_abc",
        tier="professional", replicas=3, cpu_millicores=2000, memory_mib=4096, max_connections=10000,
        image="emqx/emqx:5.8.6", node_cookie="cookie", dashboard_password="pw",
        blocked_cidrs=tuple(str(network) for network in BLOCKED_NETWORKS),
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
        "Namespace", "ResourceQuota", "NetworkPolicy", "ConfigMap", "Secret", "Service", "Service", "Service",
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
    headless, public, api = kinds["Service"]
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True
    assert api["metadata"]["name"] == "emqx-api" and "type" not in api["spec"]  # ClusterIP: in-cluster only
    assert api["spec"]["ports"] == [{"name": "api", "port": 18083, "targetPort": 18083, "protocol": "TCP"}]
    assert public["spec"]["type"] == "LoadBalancer"
    assert {p["name"]: p["port"] for p in public["spec"]["ports"]} == {"mqtt": 1883, "mqtts": 8883, "ws": 8083,
                                                                      "wss": 8084}
    assert kinds["PodDisruptionBudget"][0]["spec"]["maxUnavailable"] == 1
    hard = kinds["ResourceQuota"][0]["spec"]["hard"]
    assert hard["pods"] == "4" and hard["limits.cpu"] == "8000m" and hard["limits.memory"] == "16384Mi"
    assert kinds["Secret"][0]["stringData"] == {"node_cookie": "cookie", "dashboard_password": "pw"}


def test_network_policy_isolates_tenants():
    policy = by_kind(render(spec()))["NetworkPolicy"][0]["spec"]
    assert policy["podSelector"] == {} and policy["policyTypes"] == ["Ingress", "Egress"]
    public, cluster, control_plane = policy["ingress"]
    assert "from" not in public and {p["port"] for p in public["ports"]} == {1883, 8883, 8083, 8084}
    assert cluster["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "emqx",
                                                                  "mqcloud.io/deployment": "dep_abc"}}}]
    assert control_plane["ports"] == [{"protocol": "TCP", "port": 18083}]


def egress_of(**overrides) -> list[dict]:
    return by_kind(render(spec(**overrides)))["NetworkPolicy"][0]["spec"]["egress"]


def public_blocks(egress: list[dict]) -> dict[str, list[str]]:
    """cidr → except of the rule whose peers are the whole internet."""
    return {peer["ipBlock"]["cidr"]: peer["ipBlock"].get("except", []) for rule in egress
            for peer in rule.get("to", []) if peer.get("ipBlock", {}).get("cidr") in ("0.0.0.0/0", "::/0")}


def reaches(egress: list[dict], address: str, port: int = 443, protocol: str = "TCP") -> bool:
    """Whether some rule lets a broker pod send to ``address`` (ipBlock peers only: pods are not addresses)."""
    ip = ipaddress.ip_address(address)
    for rule in egress:
        ports = rule.get("ports")
        if ports and not any(p["protocol"] == protocol and p["port"] == port for p in ports):
            continue
        for peer in rule.get("to", []):
            block = peer.get("ipBlock")
            if block is None:
                continue
            network = ipaddress.ip_network(block["cidr"])
            if ip.version == network.version and ip in network and not any(
                    ip in ipaddress.ip_network(e) for e in block.get("except", [])):
                return True
    return False


def test_broker_egress_allows_dns_its_peers_and_the_public_internet_only():
    egress = egress_of()
    dns, peers, *others = egress
    assert dns["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                          "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]
    assert dns["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert peers["to"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "emqx",
                                                              "mqcloud.io/deployment": "dep_abc"}}}]
    assert {p["port"] for p in peers["ports"]} == {4370, 5369}
    assert set(public_blocks(egress)) == {"0.0.0.0/0", "::/0"}
    assert reaches(egress, "93.184.216.34") and reaches(egress, "2606:2800:220:1:248:1893:25c8:1946", 8443)
    for address in ("10.0.0.1", "172.16.0.1", "192.168.1.1", "127.0.0.1", "169.254.169.254", "169.254.169.253",
                    "169.254.0.23", "100.100.100.200", "100.64.0.1", "192.0.0.192", "168.63.129.16", "161.26.0.10",
                    "0.0.0.0", "224.0.0.1", "::1", "fd00:ec2::254", "fd20:ce::254", "fe80::1", "fc00::1",
                    "::ffff:10.0.0.1", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1", "::ffff:168.63.129.16"):
        assert not reaches(egress, address), address


def test_cluster_cidrs_are_kept_out_even_when_they_are_not_private_ranges():
    egress = egress_of(internal_cidrs=("100.127.0.0/16", "203.0.114.0/24"))  # e.g. a cluster on odd ranges
    assert not reaches(egress, "203.0.114.9") and not reaches(egress, "100.127.3.4")
    assert reaches(egress, "203.0.115.9")


def test_active_peerings_are_reachable_on_every_port_but_never_the_cluster_inside_them():
    egress = egress_of(peered_cidrs=("10.1.0.0/16", "172.20.0.0/16"),
                       internal_cidrs=("172.20.8.0/22", "10.96.0.0/12"))
    assert reaches(egress, "10.1.2.3", 8080) and reaches(egress, "10.1.2.3", 5432)
    assert reaches(egress, "172.20.1.1") and not reaches(egress, "172.20.9.1")  # the cluster's range inside it
    assert not reaches(egress, "10.2.0.1") and not reaches(egress, "10.96.0.1")
    # A peering entirely inside the cluster's ranges opens nothing.
    assert not reaches(egress_of(peered_cidrs=("10.100.0.0/16",), internal_cidrs=("10.96.0.0/12",)), "10.100.0.1")


def test_every_except_is_a_strict_subset_of_its_cidr_in_canonical_form():
    egress = egress_of(peered_cidrs=("10.1.0.0/16",), internal_cidrs=("10.1.4.0/24", "10.244.0.0/16"))
    for rule in egress:
        for peer in rule.get("to", []):
            block = peer.get("ipBlock")
            if block is None:
                continue
            network = ipaddress.ip_network(block["cidr"])
            assert str(network) == block["cidr"]
            for entry in block.get("except", []):
                inner = ipaddress.ip_network(entry)
                assert str(inner) == entry and inner.version == network.version
                assert inner.subnet_of(network) and inner != network


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


def test_config_and_secret_files_are_mounted_read_only_and_roll_the_pods():
    plain = render(spec())
    with_files = render(spec(config_files={"acl.conf": "%% rules"}, secret_files={"api_keys": "k:s"}))
    kinds = by_kind(with_files)
    assert kinds["ConfigMap"][0]["data"]["file-acl.conf"] == "%% rules"
    assert kinds["Secret"][0]["stringData"]["file-api_keys"] == "k:s"
    assert "k:s" not in str(kinds["ConfigMap"]) and "k:s" not in str(kinds["StatefulSet"])
    pod = kinds["StatefulSet"][0]["spec"]["template"]
    mounts = {m["mountPath"]: m for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["/opt/emqx/etc/mqcloud/acl.conf"] == {"name": "config", "mountPath": "/opt/emqx/etc/mqcloud/acl.conf",
                                                        "subPath": "file-acl.conf", "readOnly": True}
    assert mounts["/opt/emqx/etc/mqcloud-secrets/api_keys"]["name"] == "secret-files"
    secret_volume = {v["name"]: v for v in pod["spec"]["volumes"]}["secret-files"]["secret"]
    assert secret_volume["secretName"] == "emqx-bootstrap" and secret_volume["defaultMode"] == 0o400

    def hash_of(objects: list[dict]) -> dict:
        return by_kind(objects)["StatefulSet"][0]["spec"]["template"]["metadata"]["annotations"]

    changed = render(spec(config_files={"acl.conf": "%% rules"}, secret_files={"api_keys": "k:other"}))
    assert len({str(hash_of(plain)), str(hash_of(with_files)), str(hash_of(changed))}) == 3


# --- TLS ------------------------------------------------------------------------------------------------
def _tls():
    from k8s.render import BrokerTls

    return BrokerTls(certificate_chain="CERT\nCA\n", private_key="KEY\n", ca_certificates="CA\n")


def test_without_tls_nothing_tls_is_rendered():
    objects = render(spec())
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "Secret"] == ["emqx-bootstrap"]
    assert "ssl_options" not in emqx_config(spec())


def test_tls_renders_a_secret_mounted_whole_and_both_tls_listeners_pointing_at_it():
    from pyhocon import ConfigFactory

    objects = by_kind(render(spec(tls=_tls())))
    (secret,) = [s for s in objects["Secret"] if s["metadata"]["name"] == "emqx-tls"]
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["stringData"] == {"tls.crt": "CERT\nCA\n", "tls.key": "KEY\n", "ca.crt": "CA\n"}
    pod = objects["StatefulSet"][0]["spec"]["template"]["spec"]
    assert {"name": "tls", "secret": {"secretName": "emqx-tls", "defaultMode": 0o400}} in pod["volumes"]
    mounts = pod["containers"][0]["volumeMounts"]
    assert {"name": "tls", "mountPath": "/opt/emqx/etc/certs", "readOnly": True} in mounts
    config = ConfigFactory.parse_string(emqx_config(spec(tls=_tls())))
    for listener in ("ssl", "wss"):
        options = config.get_config(f"listeners.{listener}.default.ssl_options")
        assert dict(options) == {"certfile": "/opt/emqx/etc/certs/tls.crt", "keyfile": "/opt/emqx/etc/certs/tls.key",
                                 "cacertfile": "/opt/emqx/etc/certs/ca.crt"}
        assert config.get_int(f"listeners.{listener}.default.max_connections") == 10000
    assert "ssl_options" not in str(config.get_config("listeners.tcp.default"))


def test_a_renewed_certificate_changes_the_secret_but_restarts_no_pod():
    from dataclasses import replace

    first = by_kind(render(spec(tls=_tls())))
    renewed = by_kind(render(spec(tls=replace(_tls(), certificate_chain="CERT2\nCA\n"))))
    hash_of = lambda objs: objs["StatefulSet"][0]["spec"]["template"]["metadata"]["annotations"]  # noqa: E731
    assert hash_of(first) == hash_of(renewed)
    assert hash_of(first) != hash_of(by_kind(render(spec())))  # but turning TLS on does roll the pods
    assert "KEY" not in repr(spec(tls=_tls()))
