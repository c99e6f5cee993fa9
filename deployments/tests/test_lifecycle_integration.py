"""A deployment's whole life against the simulated cluster over HTTP, with a real Celery worker on Redis.

create → running → scale → stop → start → delete, asserting the Kubernetes objects' fields through the
official client; then faults: API errors, a duplicated task, objects deleted or edited by hand.
"""

from __future__ import annotations

import time

import pytest
from django.test import override_settings
from kubernetes import client as k8s_client

from controlplane.celery import app as celery_app
from deployments.models import Deployment, DeploymentEvent
from deployments.tasks import deployment_converge, deployments_reconcile
from k8s.simulator import SimulatedCluster
from tests.support import running_worker, simulated_cluster, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def cluster():
    with simulated_cluster(seed=7) as simulated:
        yield simulated


@pytest.fixture
def worker(cluster):
    with running_worker():
        yield


@pytest.fixture
def api(project_api):
    return project_api


def wait_status(api, deployment_id: str, status: str) -> dict:
    def current():
        body = api.get(f"/api/v1/deployments/{deployment_id}").json()
        assert body.get("status") != "failed", body
        return body if body.get("status") == status else None

    return wait_for(current, f"{deployment_id} to be {status}")


def statefulset(cluster: SimulatedCluster, namespace: str) -> k8s_client.V1StatefulSet:
    return k8s_client.AppsV1Api(cluster.api_client()).read_namespaced_stateful_set("emqx", namespace)


def create(api, name: str = "fleet", spec: str = "basic-1k") -> dict:
    response = api.post("/api/v1/deployments", {"project": api.project.id, "name": name,
                                                "region": "aws-us-east-1", "spec": spec}, format="json")
    assert response.status_code == 202, response.content
    return response.json()


def test_full_lifecycle_with_exact_kubernetes_objects(api, cluster, worker):
    created = create(api)
    deployment = Deployment.objects.get(pk=created["id"])
    namespace = deployment.namespace
    running = wait_status(api, created["id"], "running")
    assert running["endpoints"]["mqtt"] == f"emqx-public.{namespace}.lb.sim.mqcloud.localhost:1883"

    core = k8s_client.CoreV1Api(cluster.api_client())
    ns = core.read_namespace(namespace)
    assert ns.metadata.labels["mqcloud.io/deployment"] == deployment.id
    assert ns.metadata.labels["mqcloud.io/organization"] == deployment.organization_id
    sts = statefulset(cluster, namespace)
    assert sts.spec.replicas == 1
    container = sts.spec.template.spec.containers[0]
    assert container.image == "emqx/emqx:5.8.6"
    assert container.resources.limits == {"cpu": "500m", "memory": "1024Mi"}
    assert [m.manager for m in sts.metadata.managed_fields if m.operation == "Apply"] == ["mqcloud"]
    assert core.read_namespaced_config_map("emqx-config", namespace).data["emqx.conf"].count("max_connections = 1000")
    assert {s.metadata.name for s in core.list_namespaced_service(namespace).items} == {"emqx-headless",
                                                                                       "emqx-public", "emqx-api"}

    # Scale a single node: a second node with the new size first, so clients always have a node.
    started = time.time()
    assert api.post(f"/api/v1/deployments/{created['id']}/scale", {"spec": "basic-5k"},
                    format="json").status_code == 202
    scaled = wait_status(api, created["id"], "running")
    assert scaled["spec"] == "basic-5k"
    sts = statefulset(cluster, namespace)
    assert sts.spec.replicas == 1
    assert sts.spec.template.spec.containers[0].resources.limits == {"cpu": "1000m", "memory": "2048Mi"}
    outage = cluster.state.ready_below_seconds(namespace, 1, since=started, prefix="emqx-")
    assert outage == 0.0, f"single-node resize left clients without a node for {outage:.3f}s"

    assert api.post(f"/api/v1/deployments/{created['id']}/stop").status_code == 202
    wait_status(api, created["id"], "stopped")
    assert statefulset(cluster, namespace).spec.replicas == 0
    assert api.post(f"/api/v1/deployments/{created['id']}/start").status_code == 202
    wait_status(api, created["id"], "running")
    assert statefulset(cluster, namespace).spec.replicas == 1

    assert api.delete(f"/api/v1/deployments/{created['id']}").status_code == 202
    wait_for(lambda: Deployment.objects.get(pk=created["id"]).status == "deleted", "deletion")
    assert api.get(f"/api/v1/deployments/{created['id']}").status_code == 404
    assert namespace not in {n.metadata.name for n in core.list_namespace().items}
    transitions = list(DeploymentEvent.objects.filter(deployment_id=created["id"]).order_by("created_at")
                       .values_list("to_status", flat=True))
    assert transitions == ["pending", "provisioning", "running", "scaling", "running", "stopping", "stopped",
                           "starting", "running", "deleting", "deleted"]
    billed_specs = list(DeploymentEvent.objects.filter(deployment_id=created["id"], to_status="running")
                        .order_by("created_at").values_list("spec_id", flat=True))
    assert billed_specs == ["basic-1k", "basic-5k", "basic-5k"]


def test_multi_node_scale_rolls_one_node_at_a_time(api, cluster, worker):
    created = create(api, spec="pro-10k")
    namespace = Deployment.objects.get(pk=created["id"]).namespace
    wait_status(api, created["id"], "running")
    started = time.time()
    api.post(f"/api/v1/deployments/{created['id']}/scale", {"spec": "pro-50k"}, format="json")
    wait_status(api, created["id"], "running")
    sts = statefulset(cluster, namespace)
    assert sts.spec.replicas == 3
    assert sts.spec.template.spec.containers[0].resources.limits == {"cpu": "4000m", "memory": "8192Mi"}
    # Never more than one of three nodes away, and never none: the PodDisruptionBudget's promise.
    assert cluster.state.ready_below_seconds(namespace, 2, since=started, prefix="emqx-") == 0.0
    assert cluster.state.ready_below_seconds(namespace, 1, since=started, prefix="emqx-") == 0.0


def test_api_errors_are_retried_and_nothing_is_created_twice(api, cluster, worker):
    cluster.faults.fail_next(3, status=500, verb="patch", resource="statefulsets")
    cluster.faults.fail_next(2, status=429, verb="patch", resource="configmaps")
    created = create(api)
    # A duplicated task (at-least-once delivery) must not disturb anything.
    deployment_converge.delay(created["id"])
    wait_status(api, created["id"], "running")
    namespace = Deployment.objects.get(pk=created["id"]).namespace
    apps = k8s_client.AppsV1Api(cluster.api_client())
    assert [s.metadata.name for s in apps.list_namespaced_stateful_set(namespace).items] == ["emqx"]
    assert DeploymentEvent.objects.filter(deployment_id=created["id"], to_status="running").count() == 1


def test_reconciler_restores_objects_deleted_or_edited_by_hand(api, cluster, worker):
    created = create(api)
    wait_status(api, created["id"], "running")
    namespace = Deployment.objects.get(pk=created["id"]).namespace
    cluster.vanish("configmaps", namespace, "emqx-config")
    cluster.edit("statefulsets", namespace, "emqx", {"spec": {"replicas": 5}})
    deployments_reconcile.delay()
    core = k8s_client.CoreV1Api(cluster.api_client())

    def restored():
        try:
            core.read_namespaced_config_map("emqx-config", namespace)
        except k8s_client.ApiException:
            return False
        return statefulset(cluster, namespace).spec.replicas == 1

    wait_for(restored, "the reconciler to restore the ConfigMap and replicas")


def test_a_cluster_that_never_converges_fails_with_a_reason(api, cluster, worker):
    with override_settings(DEPLOYMENT_OPERATION_TIMEOUT_SECONDS=1):
        created = create(api)
        namespace = Deployment.objects.get(pk=created["id"]).namespace
        cluster.faults.block_readiness(namespace)

        def failed():
            body = api.get(f"/api/v1/deployments/{created['id']}").json()
            return body if body["status"] == "failed" else None

        body = wait_for(failed, "the deployment to fail")
    assert "provisioning" in body["status_reason"] and "nodes ready" in body["status_reason"]
    cluster.faults.unblock_readiness(namespace)
    assert api.post(f"/api/v1/deployments/{created['id']}/retry").json()["status"] == "provisioning"
    wait_status(api, created["id"], "running")


def test_a_lost_task_is_re_driven_by_the_reconciler(api, cluster):
    """The task that should provision is lost (a broker restart without persistence, a purge): the
    periodic reconciler finds the deployment still pending and drives it to running."""
    celery_app.control.purge()
    created = create(api)
    assert celery_app.control.purge() == 1  # the provisioning task, dropped before any worker saw it
    with running_worker():
        deployments_reconcile.delay()
        wait_status(api, created["id"], "running")


def test_the_broker_network_policy_follows_the_active_peerings(api, cluster, worker):
    """Egress to a peered CIDR opens when the peering turns active and closes when it stops being active,
    at once (no reconciler pass runs here); the cluster's own ranges stay closed throughout."""
    from deployments.models import PeeringStatus as P
    from deployments.peering.steps import advance
    from deployments.tests.factories import PeeringFactory

    created = create(api, spec="pro-1k")
    deployment = Deployment.objects.get(pk=created["id"])
    wait_status(api, created["id"], "running")
    net = k8s_client.NetworkingV1Api(cluster.api_client())

    def policy():
        return net.read_namespaced_network_policy("tenant-isolation", deployment.namespace).spec

    def peered_rules(spec) -> list[str]:
        return [peer.ip_block.cidr for rule in spec.egress for peer in rule.to or []
                if peer.ip_block and peer.ip_block.cidr not in ("0.0.0.0/0", "::/0")]

    spec = policy()
    assert spec.policy_types == ["Ingress", "Egress"] and peered_rules(spec) == []
    public = next(peer.ip_block for rule in spec.egress for peer in rule.to or []
                  if peer.ip_block and peer.ip_block.cidr == "0.0.0.0/0")
    assert {"10.0.0.0/8", "169.254.0.0/16", "168.63.129.16/32"} <= set(public._except)

    peering = PeeringFactory(organization=deployment.organization, deployment=deployment, cidr="10.1.0.0/16",
                             status=P.PENDING_ACCEPTANCE)
    assert advance(peering, P.ACTIVE, reason="accepted")
    wait_for(lambda: peered_rules(policy()) == ["10.1.0.0/16"], "egress to the peered CIDR")
    assert advance(peering, P.DELETING, reason="peering.delete")
    wait_for(lambda: peered_rules(policy()) == [], "egress to the peered CIDR to close")


@override_settings(KUBERNETES_CLUSTER_CIDRS=["100.72.0.0/16", "203.0.114.0/24"])
def test_the_cluster_cidrs_setting_reaches_the_policy(api, cluster, worker):
    created = create(api)
    namespace = Deployment.objects.get(pk=created["id"]).namespace
    wait_status(api, created["id"], "running")
    spec = k8s_client.NetworkingV1Api(cluster.api_client()).read_namespaced_network_policy(
        "tenant-isolation", namespace).spec
    public = next(peer.ip_block for rule in spec.egress for peer in rule.to or []
                  if peer.ip_block and peer.ip_block.cidr == "0.0.0.0/0")
    assert "203.0.114.0/24" in public._except  # a public-looking range the cluster uses stays closed


def test_a_running_deployment_serves_a_certificate_for_its_endpoint_host(api, cluster, worker):
    import base64

    from deployments import provisioning
    from deployments.models import ServerCertificate

    created = create(api, "tls")
    running = wait_status(api, created["id"], "running")
    host = running["endpoints"]["mqtts"].rpartition(":")[0]
    certificate = ServerCertificate.objects.get(deployment_id=created["id"])
    assert certificate.host == host and certificate.sans == [f"DNS:{host}"]
    namespace = Deployment.objects.get(pk=created["id"]).namespace
    core = k8s_client.CoreV1Api(cluster.api_client())

    def served() -> str:
        data = core.read_namespaced_secret("emqx-tls", namespace).data
        return base64.b64decode(data["tls.crt"]).decode()

    assert served().startswith(certificate.certificate_pem)
    # The pods were rolled to the TLS listeners before the deployment was called running.
    assert "ssl_options" in core.read_namespaced_config_map("emqx-config", namespace).data["emqx.conf"]

    # A deployment that reached running without one (before this existed) gets one from the repair pass.
    ServerCertificate.objects.filter(deployment_id=created["id"]).delete()
    provisioning.repair(created["id"])
    backfilled = ServerCertificate.objects.get(deployment_id=created["id"])
    assert backfilled.host == host and served().startswith(backfilled.certificate_pem)
