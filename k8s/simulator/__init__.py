"""A simulated Kubernetes cluster: a stateful fake API server on loopback that the unmodified official
`kubernetes` client talks to over HTTP, with a fake kubelet/controllers, fault injection and fake EMQX
broker metrics. Standard library plus PyYAML only (no Django), so it also runs as its own process:
`python -m k8s.simulator --port 8443 --kubeconfig var/kubeconfig-sim.yaml`.

    with SimulatedCluster(ready_delay_s=0.2) as cluster:
        apps = kubernetes.client.AppsV1Api(cluster.api_client())
"""

from .cluster import SimulatedCluster
from .errors import ApiError
from .faults import FaultInjector, FaultRule
from .metrics import BrokerMetrics
from .store import Store

__all__ = ["ApiError", "BrokerMetrics", "FaultInjector", "FaultRule", "SimulatedCluster", "Store"]
