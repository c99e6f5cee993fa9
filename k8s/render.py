"""Rendering a broker cluster into Kubernetes objects. Pure: same input, same objects, no I/O.

The control plane owns every field it renders (server-side apply, field manager ``mqcloud``); fields it
does not render (status, defaults the API server fills in) stay with whoever set them.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
from dataclasses import dataclass, field

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

LABEL_PREFIX = "mqcloud.io"
MQTT_PORTS = {"mqtt": 1883, "mqtts": 8883, "ws": 8083, "wss": 8084}
DASHBOARD_PORT = 18083
CLUSTER_PORTS = {"ekka": 4370, "genrpc": 5369}
DATA_MOUNT = "/opt/emqx/data"
#: Where ``config_files`` (from the ConfigMap) and ``secret_files`` (from the bootstrap Secret) are mounted.
CONFIG_FILES_DIR = "/opt/emqx/etc/mqcloud"
SECRET_FILES_DIR = "/opt/emqx/etc/mqcloud-secrets"
#: Where the ``-tls`` Secret (``TLS_FILES``) is mounted whole. It hides the image's demo certificates there, which
#: is the point: no listener may fall back to them.
TLS_DIR = "/opt/emqx/etc/certs"
TLS_FILES = {"certfile": "tls.crt", "keyfile": "tls.key", "cacertfile": "ca.crt"}
#: The in-cluster Service in front of the brokers' management API (the control plane's way in).
API_SERVICE = "emqx-api"
#: The cluster DNS (CoreDNS keeps the kube-dns label on every common distribution).
KUBE_DNS_PEER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                 "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
#: IPv6 ranges that carry an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo). A policy cannot look
#: inside an address as the outbound client does, so the broker is kept out of the whole ranges.
ANY_IPV4, ANY_IPV6 = ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")
IPV4_CARRYING_V6 = tuple(ipaddress.ip_network(n) for n in (
    "::ffff:0:0/96", "::/96", "64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32"))


@dataclass(frozen=True)
class BrokerTls:
    """The TLS listeners' material (PEM): the server certificate followed by its CA, its key, and the CAs the
    deployment's clients are told to trust (``ca.pem``)."""

    certificate_chain: str
    private_key: str
    ca_certificates: str

    def __repr__(self) -> str:  # a spec in a log line or a traceback must not carry the key
        return "BrokerTls(...)"


@dataclass(frozen=True)
class BrokerClusterSpec:
    """Everything the renderer needs; the deployments app builds it from a Deployment."""

    namespace: str
    name: str  # the StatefulSet/Service base name inside the namespace
    organization_id: str
    project_id: str
    deployment_id: str
    tier: str
    replicas: int
    cpu_millicores: int
    memory_mib: int
    max_connections: int
    image: str
    node_cookie: str
    dashboard_password: str
    #: Where the broker may never connect, wherever the rest of the policy points: the private, loopback,
    #: link-local and reserved ranges and the clouds' metadata services. The caller passes the control plane's
    #: list (``controlplane.outbound.BLOCKED_NETWORKS``), so the broker and the control plane's own outbound
    #: client keep out of the same places; this module imports no app.
    blocked_cidrs: tuple[str, ...]
    storage_gib: int = 10
    #: HOCON fragments appended to emqx.conf (e.g. the HTTP authentication chain).
    extra_config: tuple[str, ...] = ()
    #: Secrets the config reads from the environment (``${?NAME}`` in HOCON): (variable name, value). The
    #: values go into the bootstrap Secret, never into the ConfigMap.
    secret_env: tuple[tuple[str, str], ...] = ()
    #: Files the config refers to, mounted read-only under ``CONFIG_FILES_DIR`` (name -> content).
    config_files: dict[str, str] = field(default_factory=dict)
    #: Secret files (e.g. the management API's bootstrap key), in the bootstrap Secret, mounted read-only
    #: under ``SECRET_FILES_DIR`` (name -> content).
    secret_files: dict[str, str] = field(default_factory=dict)
    #: For a single node being resized: run this many replicas during the surge.
    surge_replicas: int | None = None
    #: StatefulSet rolling-update partition (pods with ordinal >= partition get the new template).
    partition: int = 0
    #: The CIDRs of the deployment's active VPC peerings: the broker may reach them (HTTP auth, bridges).
    peered_cidrs: tuple[str, ...] = ()
    #: The cluster's own ranges (pods, services, nodes), kept out of the broker's egress even where they are
    #: not private ranges or fall inside a peering. The ``blocked_cidrs`` always are.
    internal_cidrs: tuple[str, ...] = ()
    annotations: dict[str, str] = field(default_factory=dict)
    #: The ``ssl``/``wss`` listeners' certificate; None (no address to certify yet) leaves them unconfigured.
    tls: BrokerTls | None = None

    @property
    def tls_secret(self) -> str:
        return f"{self.name}-tls"

    @property
    def labels(self) -> dict[str, str]:
        return {
            "app.kubernetes.io/name": "emqx",
            "app.kubernetes.io/instance": self.name,
            "app.kubernetes.io/managed-by": "mqcloud",
            f"{LABEL_PREFIX}/organization": self.organization_id,
            f"{LABEL_PREFIX}/project": self.project_id,
            f"{LABEL_PREFIX}/deployment": self.deployment_id,
            f"{LABEL_PREFIX}/tier": self.tier,
        }

    @property
    def selector(self) -> dict[str, str]:
        return {"app.kubernetes.io/instance": self.name, f"{LABEL_PREFIX}/deployment": self.deployment_id}

    @property
    def headless_service(self) -> str:
        return f"{self.name}-headless"


def secret_env_key(name: str) -> str:
    """The bootstrap Secret's key holding the environment variable ``name``."""
    return "env-" + name.lower().replace("_", "-")


def file_key(name: str) -> str:
    """The ConfigMap or Secret key holding the file ``name`` (keys allow only ``[-._a-zA-Z0-9]``)."""
    return "file-" + "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-._") else "-" for ch in name)


def _meta(spec: BrokerClusterSpec, name: str, *, namespaced: bool = True) -> dict:
    meta: dict = {"name": name, "labels": dict(spec.labels)}
    if namespaced:
        meta["namespace"] = spec.namespace
    return meta


def emqx_config(spec: BrokerClusterSpec) -> str:
    """emqx.conf (HOCON). Cluster discovery by DNS SRV records of the headless service."""
    fqdn = f"{spec.headless_service}.{spec.namespace}.svc.cluster.local"
    lines = [
        "node {",
        "  data_dir = \"data\"",
        "  cookie = ${?EMQX_NODE__COOKIE}",
        "}",
        "cluster {",
        "  discovery_strategy = dns",
        f"  dns {{ name = \"{fqdn}\", record_type = srv }}",
        "}",
        *(
            f"listeners.{kind}.default {{ bind = \"0.0.0.0:{MQTT_PORTS[port]}\", "
            f"max_connections = {spec.max_connections}{_ssl_options(spec) if kind in ('ssl', 'wss') else ''} }}"
            for kind, port in (("tcp", "mqtt"), ("ssl", "mqtts"), ("ws", "ws"), ("wss", "wss"))
        ),
        f"dashboard.listeners.http.bind = {DASHBOARD_PORT}",
        "log.console.level = warning",
    ]
    lines.extend(spec.extra_config)
    return "\n".join(lines) + "\n"


def _ssl_options(spec: BrokerClusterSpec) -> str:
    if spec.tls is None:
        return ""
    files = ", ".join(f'{option} = "{TLS_DIR}/{name}"' for option, name in TLS_FILES.items())
    return f", ssl_options {{ {files} }}"


def _tls_secret(spec: BrokerClusterSpec) -> list[dict]:
    if spec.tls is None:
        return []
    return [{
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(spec, spec.tls_secret),
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": spec.tls.certificate_chain, "tls.key": spec.tls.private_key,
                       "ca.crt": spec.tls.ca_certificates},
    }]


def render(spec: BrokerClusterSpec) -> list[dict]:
    """All objects of one broker cluster, in the order they should be applied."""
    config = emqx_config(spec)
    # A hash of the config in the pod template restarts pods (one at a time) when the config changes.
    hashed = config + json.dumps(spec.config_files, sort_keys=True)
    if spec.secret_env or spec.secret_files:
        # A changed secret must roll the pods too (the environment is read at start). Salted with the node
        # cookie so the annotation says nothing about the secret values.
        hashed += "\0" + spec.node_cookie + json.dumps([spec.secret_env, sorted(spec.secret_files.items())])
    config_hash = hashlib.sha256(hashed.encode()).hexdigest()[:16]
    replicas = spec.surge_replicas if spec.surge_replicas is not None else spec.replicas
    quota_pods = max(replicas, spec.replicas) + 1
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(spec, spec.namespace, namespaced=False)},
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": _meta(spec, "broker-quota"),
            "spec": {
                "hard": {
                    "pods": str(quota_pods),
                    "requests.cpu": f"{spec.cpu_millicores * quota_pods}m",
                    "requests.memory": f"{spec.memory_mib * quota_pods}Mi",
                    "limits.cpu": f"{spec.cpu_millicores * quota_pods}m",
                    "limits.memory": f"{spec.memory_mib * quota_pods}Mi",
                    "persistentvolumeclaims": str(quota_pods),
                    "services.loadbalancers": "1",
                }
            },
        },
        _network_policy(spec),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(spec, f"{spec.name}-config"),
            "data": {"emqx.conf": config, **{file_key(n): v for n, v in spec.config_files.items()}},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _meta(spec, f"{spec.name}-bootstrap"),
            "type": "Opaque",
            "stringData": {"node_cookie": spec.node_cookie, "dashboard_password": spec.dashboard_password,
                           **{secret_env_key(name): value for name, value in spec.secret_env},
                           **{file_key(name): value for name, value in spec.secret_files.items()}},
        },
        *_tls_secret(spec),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(spec, spec.headless_service),
            "spec": {
                "clusterIP": "None",
                # Nodes must find each other before they are ready, or the cluster never forms.
                "publishNotReadyAddresses": True,
                "selector": spec.selector,
                "ports": [{"name": n, "port": p, "targetPort": p, "protocol": "TCP"} for n, p in CLUSTER_PORTS.items()],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(spec, f"{spec.name}-public"),
            "spec": {
                "type": "LoadBalancer",
                "externalTrafficPolicy": "Local",
                "selector": spec.selector,
                "ports": [{"name": n, "port": p, "targetPort": p, "protocol": "TCP"} for n, p in MQTT_PORTS.items()],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(spec, API_SERVICE),
            "spec": {
                "selector": spec.selector,
                "ports": [{"name": "api", "port": DASHBOARD_PORT, "targetPort": DASHBOARD_PORT, "protocol": "TCP"}],
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": _meta(spec, spec.name),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": spec.selector}},
        },
        _stateful_set(spec, replicas, config_hash),
    ]


def _ip_block(cidr: IPNetwork, excluded: tuple[str, ...]) -> dict:
    """An ipBlock peer: ``cidr`` minus the parts of ``excluded`` inside it (strict subsets, merged, canonical,
    as the API server requires)."""
    block: dict = {"cidr": str(cidr)}
    if inside := _inside(str(cidr), excluded):
        block["except"] = list(inside)
    return {"ipBlock": block}


@functools.lru_cache(maxsize=1024)
def _inside(cidr: str, excluded: tuple[str, ...]) -> tuple[str, ...]:
    """The parts of ``excluded`` strictly inside ``cidr``, merged. Cached: a region's deployments all exclude the
    same ranges, and this arithmetic was a third of a drift pass over the region (which renders every one)."""
    network = ipaddress.ip_network(cidr)
    inside = [n for n in map(ipaddress.ip_network, excluded)
              if n.version == network.version and n.subnet_of(network) and n != network]  # type: ignore[arg-type]  # same IP version, compared first
    return tuple(str(n) for n in ipaddress.collapse_addresses(inside))  # type: ignore[type-var]  # one version


@functools.lru_cache(maxsize=256)
def _peered_outside(peered: tuple[str, ...], internal: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """The peered networks that are not inside the cluster's own ranges (one inside them opens nothing)."""
    inside = [ipaddress.ip_network(c) for c in internal]
    return tuple(p for p in map(ipaddress.ip_network, peered)
                 if not any(p.version == i.version and p.subnet_of(i) for i in inside))  # type: ignore[arg-type]  # same IP version, compared first


def _egress(spec: BrokerClusterSpec, cluster_ports: list[dict]) -> list[dict]:
    """Where a broker may connect: the cluster DNS, its own nodes, the customer's peered networks and the
    public internet; never the cluster, the control plane, the nodes' networks or a metadata service. So a
    customer URL the broker calls (HTTP auth) cannot reach inside, even when its name is rebound later."""
    never = (*spec.blocked_cidrs, *map(str, IPV4_CARRYING_V6), *spec.internal_cidrs)
    rules: list[dict] = [
        {"to": [KUBE_DNS_PEER], "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
        {"to": [{"podSelector": {"matchLabels": spec.selector}}], "ports": cluster_ports},
    ]
    # A peering that lies inside the cluster's own ranges opens nothing; one that contains them, all but them.
    if peered := _peered_outside(tuple(spec.peered_cidrs), tuple(spec.internal_cidrs)):
        rules.append({"to": [_ip_block(p, never) for p in peered]})
    rules.append({"to": [_ip_block(ANY_IPV4, never), _ip_block(ANY_IPV6, never)]})
    return rules


def _network_policy(spec: BrokerClusterSpec) -> dict:
    mqtt_ports = [{"protocol": "TCP", "port": p} for p in MQTT_PORTS.values()]
    cluster_ports = [{"protocol": "TCP", "port": p} for p in CLUSTER_PORTS.values()]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(spec, "tenant-isolation"),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "egress": _egress(spec, cluster_ports),
            "ingress": [
                # MQTT listeners are public (the LoadBalancer); nothing else is.
                {"ports": mqtt_ports},
                # Broker nodes talk to each other only inside this namespace.
                {"from": [{"podSelector": {"matchLabels": spec.selector}}], "ports": cluster_ports},
                # The control plane reaches the management API to evacuate nodes and read metrics.
                {
                    "from": [{"namespaceSelector": {"matchLabels": {f"{LABEL_PREFIX}/control-plane": "true"}}}],
                    "ports": [{"protocol": "TCP", "port": DASHBOARD_PORT}],
                },
            ],
        },
    }


def _stateful_set(spec: BrokerClusterSpec, replicas: int, config_hash: str) -> dict:
    fqdn_suffix = f"{spec.headless_service}.{spec.namespace}.svc.cluster.local"
    resources = {"cpu": f"{spec.cpu_millicores}m", "memory": f"{spec.memory_mib}Mi"}
    probe = {"httpGet": {"path": "/status", "port": DASHBOARD_PORT}}
    container = {
        "name": "emqx",
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "EMQX_NODE__NAME", "value": f"emqx@$(POD_NAME).{fqdn_suffix}"},
            {"name": "EMQX_NODE__COOKIE",
             "valueFrom": {"secretKeyRef": {"name": f"{spec.name}-bootstrap", "key": "node_cookie"}}},
            {"name": "EMQX_DASHBOARD__DEFAULT_PASSWORD",
             "valueFrom": {"secretKeyRef": {"name": f"{spec.name}-bootstrap", "key": "dashboard_password"}}},
            *({"name": name, "valueFrom": {"secretKeyRef": {"name": f"{spec.name}-bootstrap",
                                                            "key": secret_env_key(name)}}}
              for name, _ in spec.secret_env),
        ],
        "ports": [
            *({"name": n, "containerPort": p, "protocol": "TCP"} for n, p in MQTT_PORTS.items()),
            *({"name": n, "containerPort": p, "protocol": "TCP"} for n, p in CLUSTER_PORTS.items()),
            {"name": "dashboard", "containerPort": DASHBOARD_PORT, "protocol": "TCP"},
        ],
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "readinessProbe": {**probe, "initialDelaySeconds": 5, "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {**probe, "initialDelaySeconds": 60, "periodSeconds": 30, "failureThreshold": 3},
        "lifecycle": {
            # Before a node stops, move its clients to the other nodes (EMQX node evacuation), so a
            # rolling restart disconnects each client once and never leaves it without a node to join.
            "preStop": {"exec": {"command": [
                "/opt/emqx/bin/emqx", "ctl", "rebalance", "start", "--evacuation",
                "--conn-evict-rate", "500", "--sess-evict-rate", "500", "--wait-takeover", "10",
            ]}}
        },
        "volumeMounts": [
            {"name": "data", "mountPath": DATA_MOUNT},
            {"name": "config", "mountPath": "/opt/emqx/etc/emqx.conf", "subPath": "emqx.conf", "readOnly": True},
            *({"name": "config", "mountPath": f"{CONFIG_FILES_DIR}/{name}", "subPath": file_key(name),
               "readOnly": True} for name in sorted(spec.config_files)),
            *({"name": "secret-files", "mountPath": f"{SECRET_FILES_DIR}/{name}",
               "subPath": file_key(name), "readOnly": True} for name in sorted(spec.secret_files)),
            # Whole, not by subPath: the kubelet then swaps renewed files in place and the broker reads them on
            # new connections, so a renewal restarts no pod (which is why the hash above leaves TLS out).
            *([{"name": "tls", "mountPath": TLS_DIR, "readOnly": True}] if spec.tls else []),
        ],
    }
    volumes: list[dict] = [{"name": "config", "configMap": {"name": f"{spec.name}-config"}}]
    if spec.secret_files:
        volumes.append({"name": "secret-files", "secret": {
            "secretName": f"{spec.name}-bootstrap", "defaultMode": 0o400,
            "items": [{"key": file_key(n), "path": file_key(n)}
                      for n in sorted(spec.secret_files)]}})
    if spec.tls:
        volumes.append({"name": "tls", "secret": {"secretName": spec.tls_secret, "defaultMode": 0o400}})
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {**_meta(spec, spec.name), "annotations": dict(spec.annotations)},
        "spec": {
            "serviceName": spec.headless_service,
            "replicas": replicas,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": spec.selector},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": spec.partition}},
            "template": {
                "metadata": {
                    "labels": {**spec.labels, **spec.selector},
                    "annotations": {f"{LABEL_PREFIX}/config-hash": config_hash},
                },
                "spec": {
                    "terminationGracePeriodSeconds": 120,
                    "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000},
                    "containers": [container],
                    "volumes": volumes,
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": f"{spec.storage_gib}Gi"}},
                    },
                }
            ],
        },
    }


def manifest_digest(objects: list[dict]) -> str:
    """A stable digest of rendered objects, to tell whether anything needs re-applying."""
    return hashlib.sha256(json.dumps(objects, sort_keys=True).encode()).hexdigest()
