"""HTTP auth in the broker's configuration: the HOCON fragments field by field, secrets only in the Secret,
and the "applied" flag once provisioning pushed the config to the (simulated) cluster."""

from __future__ import annotations

import json
import time

import pytest
from django.test import override_settings
from kubernetes import client as k8s_client

from deployments import provisioning
from deployments.http_auth import broker_config, build_request, request_spec
from deployments.models import HttpAuthConfig
from deployments.mqtt_access.acl_conf import render_acl_conf
from deployments.tests.factories import DeploymentFactory
from k8s.clusters import forget_clients
from k8s.render import render, secret_env_key
from k8s.simulator import SimulatedCluster

pytestmark = pytest.mark.django_db


def make_config(deployment=None, **overrides) -> HttpAuthConfig:
    deployment = deployment or DeploymentFactory()
    fields = {
        "organization": deployment.organization,
        "deployment": deployment,
        "authn_method": "post",
        "authn_url": "https://auth.example.com/mqtt/auth?v=1",
        "authn_headers": json.dumps({"X-Api-Key": "k-123", "Authorization": 'Bearer "x" ${HOME}'}),
        "authn_params": {"username": "${username}", "password": "${password}", "note": 'say "hi" ${HOME}'},
        "authn_timeout_ms": 1500,
    } | overrides
    return HttpAuthConfig.objects.create(**fields)


def by_kind(objects: list[dict]) -> dict[str, dict]:
    return {item["kind"]: item for item in objects}


BUILT_IN = [
    "  {",
    "    mechanism = password_based",
    "    backend = built_in_database",
    "    user_id_type = username",
    "    password_hash_algorithm { name = pbkdf2, mac_fun = sha256, iterations = 4096, dk_length = 32 }",
    "  }",
]
FILE_SOURCE = [
    "    {",
    "      type = file",
    "      enable = true",
    '      path = "/opt/emqx/etc/mqcloud/acl.conf"',
    "    }",
]
AUTHORIZATION_HEAD = ["authorization {", "  no_match = deny", "  deny_action = ignore", "  cache { enable = false }",
                      "  sources = ["]
BOOTSTRAP = 'api_key.bootstrap_file = "/opt/emqx/etc/mqcloud-secrets/api_keys"'


def test_authentication_chain_field_by_field():
    fragments, secret_env = broker_config(make_config())
    assert fragments == ("\n".join([
        "authentication = [",
        *BUILT_IN,
        "  {",
        "    mechanism = password_based",
        "    backend = http",
        "    enable = true",
        "    method = post",
        '    url = "https://auth.example.com/mqtt/auth?v=1"',
        "    headers {",
        '      "content-type" = "application/json"',
        '      "authorization" = ${?MQCLOUD_HTTP_AUTHN_HEADER_0}',
        '      "x-api-key" = ${?MQCLOUD_HTTP_AUTHN_HEADER_1}',
        "    }",
        "    body {",
        '      "username" = "${username}"',
        '      "password" = "${password}"',
        '      "note" = "say \\"hi\\" ${HOME}"',
        "    }",
        '    request_timeout = "1500ms"',
        "  }",
        "]",
    ]), "\n".join([*AUTHORIZATION_HEAD, *FILE_SOURCE, "  ]", "}"]), BOOTSTRAP)
    assert secret_env == (("MQCLOUD_HTTP_AUTHN_HEADER_0", 'Bearer "x" ${HOME}'),
                          ("MQCLOUD_HTTP_AUTHN_HEADER_1", "k-123"))


def test_authorization_chain_field_by_field():
    config = make_config(authn_headers="{}", authz_method="get", authz_url="http://acl.example.com/acl",
                         authz_headers=json.dumps({"X-Key": "acl"}), authz_timeout_ms=800,
                         authz_params={"topic": "${topic}", "action": "${action}", "clientid": "${clientid}"})
    fragments, secret_env = broker_config(config)
    assert len(fragments) == 3
    assert "${?MQCLOUD_HTTP_AUTHN" not in fragments[0]
    assert fragments[1] == "\n".join([
        *AUTHORIZATION_HEAD,
        *FILE_SOURCE,
        "    {",
        "      type = http",
        "      enable = true",
        "      method = get",
        '      url = "http://acl.example.com/acl"',
        "      headers {",
        '        "x-key" = ${?MQCLOUD_HTTP_AUTHZ_HEADER_0}',
        "      }",
        "      body {",
        '        "topic" = "${topic}"',
        '        "action" = "${action}"',
        '        "clientid" = "${clientid}"',
        "      }",
        '      request_timeout = "800ms"',
        "    }",
        "  ]",
        "}",
    ])
    assert secret_env == (("MQCLOUD_HTTP_AUTHZ_HEADER_0", "acl"),)


def test_without_http_auth_the_chain_is_the_built_in_database_and_the_acl_file():
    """No deployment accepts anonymous clients: the chain is never empty (EMQX allows anonymous only then)."""
    chain_only = ("\n".join(["authentication = [", *BUILT_IN, "]"]),
                  "\n".join([*AUTHORIZATION_HEAD, *FILE_SOURCE, "  ]", "}"]), BOOTSTRAP)
    assert broker_config(None) == (chain_only, ())
    assert broker_config(make_config(enabled=False)) == (chain_only, ())


def test_rendered_objects_keep_header_values_out_of_the_config_map():
    config = make_config()
    spec = provisioning.desired_cluster_spec(config.deployment)
    objects = by_kind(render(spec))
    conf = objects["ConfigMap"]["data"]["emqx.conf"]
    assert conf.endswith("\n".join(spec.extra_config) + "\n")
    assert "k-123" not in conf and "Bearer" not in conf
    secret = objects["Secret"]["stringData"]
    assert secret[secret_env_key("MQCLOUD_HTTP_AUTHN_HEADER_1")] == "k-123"
    assert secret_env_key("MQCLOUD_HTTP_AUTHN_HEADER_1") == "env-mqcloud-http-authn-header-1"
    env = {e["name"]: e for e in objects["StatefulSet"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MQCLOUD_HTTP_AUTHN_HEADER_1"] == {"name": "MQCLOUD_HTTP_AUTHN_HEADER_1", "valueFrom": {
        "secretKeyRef": {"name": "emqx-bootstrap", "key": "env-mqcloud-http-authn-header-1"}}}
    assert objects["StatefulSet"]["metadata"]["annotations"]["mqcloud.io/http-auth-generation"] == "1"
    assert "k-123" not in json.dumps(objects["StatefulSet"])


def test_a_changed_header_value_alone_rolls_the_pods():
    config = make_config()
    before = by_kind(render(provisioning.desired_cluster_spec(config.deployment)))
    config.authn_headers = json.dumps({"X-Api-Key": "k-456", "Authorization": 'Bearer "x" ${HOME}'})
    config.save()
    after = by_kind(render(provisioning.desired_cluster_spec(config.deployment)))
    assert before["ConfigMap"] == after["ConfigMap"]
    key = "mqcloud.io/config-hash"
    assert (before["StatefulSet"]["spec"]["template"]["metadata"]["annotations"][key]
            != after["StatefulSet"]["spec"]["template"]["metadata"]["annotations"][key])


def test_a_deployment_without_http_auth_gets_the_access_chain_and_its_management_key():
    deployment = DeploymentFactory()
    spec = provisioning.desired_cluster_spec(deployment)
    assert spec.extra_config == broker_config(None)[0] and spec.secret_env == () and spec.annotations == {}
    assert spec.config_files == {"acl.conf": render_acl_conf([])}
    assert spec.secret_files == {"api_keys": f"mqcloud:{deployment.management_api_secret}:administrator\n"}


def test_the_test_request_matches_the_rendered_body():
    spec = request_spec(make_config(), "authentication")
    built = build_request(spec, {"username": "u", "password": "p"})
    assert built.method == "POST" and built.url == "https://auth.example.com/mqtt/auth?v=1"
    assert json.loads(built.body) == {"username": "u", "password": "p", "note": 'say "hi" '}
    assert built.headers["content-type"] == "application/json"


@pytest.fixture
def cluster():
    with SimulatedCluster(ready_delay_s=0.05, seed=3) as simulated:
        with override_settings(KUBERNETES_SIMULATOR_URL=simulated.url, KUBERNETES_CLUSTERS={}):
            forget_clients()
            yield simulated
    forget_clients()


def test_repair_pushes_the_config_and_it_is_live_once_the_nodes_restarted(cluster,
                                                                           django_capture_on_commit_callbacks):
    config = make_config()
    deployment = config.deployment
    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert provisioning.repair(deployment.id) > 0
    assert len(queued) == 1  # the rolling restart's watch
    config.refresh_from_db()
    assert config.applied_generation == 0  # applied, but the nodes have not all restarted with it
    deadline = time.monotonic() + 20
    while provisioning.http_auth_rollout_once(deployment.id).again_in is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    config.refresh_from_db()
    assert config.applied_generation == config.generation == 1
    core = k8s_client.CoreV1Api(cluster.api_client())
    conf = core.read_namespaced_config_map("emqx-config", deployment.namespace).data["emqx.conf"]
    assert "backend = http" in conf and "${?MQCLOUD_HTTP_AUTHN_HEADER_1}" in conf and "k-123" not in conf
    secret = core.read_namespaced_secret("emqx-bootstrap", deployment.namespace)
    assert "env-mqcloud-http-authn-header-1" in secret.data
