"""Custom HTTP authentication/ACL: the API, its rules, and the "test" call against a real HTTP auth service
listening on loopback (the guarded outbound client is allowed to reach loopback only by setting)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from django.contrib.admin.utils import quote  # ids contain _, which the admin escapes
from django.db import connection
from django.test import override_settings

from controlplane.tests.servers import BANNERS, raw_server
from deployments.models import Deployment, HttpAuthConfig
from deployments.tests.factories import DeploymentFactory
from deployments.tests.http_auth_service import AuthService, serve_auth
from projects.models import AuditEvent
from projects.roles import Role
from projects.tests.factories import OrganizationFactory, make_api_key, operator_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def auth_service() -> Iterator[AuthService]:
    with serve_auth() as service:
        yield service

SECRET = "Bearer s3cr3t-header-value"


# --- API helpers ------------------------------------------------------------------------------------
@pytest.fixture
def org():
    return OrganizationFactory()


@pytest.fixture
def deployment(org):
    return DeploymentFactory(organization=org)


@pytest.fixture
def api(org, make_client):
    _, secret = make_api_key(org, role=Role.OWNER)
    return make_client(secret)


def config_body(url: str, *, method: str = "POST", params: dict | None = None, headers: dict | None = None,
                timeout_ms: int = 2000, authorization: dict | None = None, enabled: bool = True) -> dict:
    return {
        "enabled": enabled,
        "authentication": {
            "method": method, "url": url, "timeout_ms": timeout_ms,
            "headers": {"Authorization": SECRET} if headers is None else headers,
            "params": {"clientid": "${clientid}", "username": "${username}", "password": "${password}"}
            if params is None else params,
        },
        "authorization": authorization,
    }


def put(api, deployment: Deployment, body: dict):
    return api.put(f"/api/v1/deployments/{deployment.id}/http-auth", body, format="json")


def test_call(api, deployment: Deployment, **sample):
    return api.post(f"/api/v1/deployments/{deployment.id}/http-auth/test", sample, format="json")


test_call.__test__ = False  # a helper, not a test


# --- configuration ----------------------------------------------------------------------------------
def test_put_stores_the_config_and_get_shows_header_names_only(api, deployment, auth_service):
    acl = {"method": "GET", "url": auth_service.url.replace("auth", "acl"), "headers": {"X-Key": "acl-secret"},
           "params": {"topic": "${topic}", "action": "${action}", "clientid": "${clientid}"}, "timeout_ms": 500}
    response = put(api, deployment, config_body(auth_service.url, authorization=acl))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["enabled"] is True
    assert body["authentication"] == {
        "method": "POST", "url": auth_service.url, "headers": ["Authorization"], "timeout_ms": 2000,
        "params": {"clientid": "${clientid}", "username": "${username}", "password": "${password}"},
    }
    assert body["authorization"]["headers"] == ["X-Key"] and body["authorization"]["method"] == "GET"
    assert body["generation"] == 1 and body["applied"] is False
    got = api.get(f"/api/v1/deployments/{deployment.id}/http-auth")
    assert got.status_code == 200 and got.json() == body
    for text in (response.content.decode(), got.content.decode()):
        assert "s3cr3t" not in text and "acl-secret" not in text
    deployment.refresh_from_db()
    assert deployment.desired_generation == 2  # re-driven: the broker config changes


def test_header_values_are_encrypted_at_rest_and_kept_out_of_the_audit_log(api, deployment, auth_service):
    assert put(api, deployment, config_body(auth_service.url)).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT authn_headers FROM deployments_httpauthconfig WHERE deployment_id = %s",
                       [deployment.id])
        raw = cursor.fetchone()[0]
    assert "s3cr3t" not in raw and "Authorization" not in raw
    assert json.loads(HttpAuthConfig.objects.get(deployment=deployment).authn_headers) == {"Authorization": SECRET}
    event = AuditEvent.objects.get(action="deployment.http_auth.update", target_id=deployment.id)
    assert "s3cr3t" not in json.dumps(event.changes)
    assert event.changes["authentication"]["headers"] == ["Authorization"]


def test_put_replaces_everything_and_delete_removes_it(api, deployment, auth_service):
    acl = {"method": "POST", "url": auth_service.url, "params": {"t": "${topic}"}}
    assert put(api, deployment, config_body(auth_service.url, authorization=acl)).status_code == 200
    second = put(api, deployment, config_body(auth_service.url, headers={}, enabled=False)).json()
    assert second["authentication"]["headers"] == [] and second["authorization"] is None
    assert second["enabled"] is False and second["generation"] == 2
    assert put(api, deployment, config_body(auth_service.url)).json()["authentication"]["timeout_ms"] == 2000
    assert api.delete(f"/api/v1/deployments/{deployment.id}/http-auth").status_code == 204
    assert api.get(f"/api/v1/deployments/{deployment.id}/http-auth").status_code == 404
    assert api.delete(f"/api/v1/deployments/{deployment.id}/http-auth").status_code == 404
    assert AuditEvent.objects.filter(action="deployment.http_auth.delete", target_id=deployment.id).exists()


def test_get_without_a_config_is_404(api, deployment):
    response = api.get(f"/api/v1/deployments/{deployment.id}/http-auth")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"params": {"u": "${user}", "x": "${nope}"}}, "authentication.params", "${user}, ${nope}"),
        ({"params": {"t": "${topic}"}}, "authentication.params", "${topic}"),  # ACL-only placeholder
        ({"timeout_ms": 99}, "authentication.timeout_ms", "100"),
        ({"timeout_ms": 10001}, "authentication.timeout_ms", "10000"),
        ({"method": "PUT"}, "authentication.method", "GET or POST"),
        ({"url": "ftp://example.com/auth"}, "authentication.url", "http"),
        ({"url": "file:///etc/passwd"}, "authentication.url", "http"),
        ({"url": "gopher://example.com/"}, "authentication.url", "http"),
        ({"url": "http://example.com/${clientid}"}, "authentication.url", "params"),
        ({"url": "http://user:pw@example.com/"}, "authentication.url", "header"),
        ({"headers": {"Bad Name": "x"}}, "authentication.headers", "header name"),
        ({"headers": {"Content-Type": "text/plain"}}, "authentication.headers", "sets the Content-Type"),
        ({"headers": {"X-A": "a\r\nX-Injected: 1"}}, "authentication.headers", "line break"),
        ({"extra": 1}, "authentication.extra", "Unknown field"),
    ],
)
def test_bad_requests_are_400_naming_the_problem(api, deployment, auth_service, change, field, fragment):
    body = config_body(auth_service.url)
    body["authentication"] |= change
    response = put(api, deployment, body)
    assert response.status_code == 400, response.content
    problem = response.json()
    assert field in problem["errors"], problem
    assert fragment in json.dumps(problem, ensure_ascii=False), problem
    assert not HttpAuthConfig.objects.exists()


def test_acl_may_use_topic_and_action(api, deployment, auth_service):
    acl = {"method": "POST", "url": auth_service.url, "params": {"t": "${topic}", "a": "${action}"}}
    assert put(api, deployment, config_body(auth_service.url, authorization=acl)).status_code == 200
    acl["params"]["x"] = "${bogus}"
    response = put(api, deployment, config_body(auth_service.url, authorization=acl))
    assert response.status_code == 400 and "authorization.params" in response.json()["errors"]


# --- where the auth service may be ------------------------------------------------------------------
@pytest.mark.parametrize("url", ["http://10.0.0.1/auth", "http://192.168.1.5:8080/", "http://169.254.169.254/",
                                 "http://[::ffff:127.0.0.1]/", "http://127.0.0.1/", "http://100.64.0.1/"])
def test_basic_deployments_need_a_public_address(api, deployment, url):
    response = put(api, deployment, config_body(url))
    assert response.status_code == 400, response.content
    message = response.json()["errors"]["authentication.url"][0]
    assert message.endswith("; a basic deployment's HTTP authentication must use a public address.")
    assert ". " not in message  # one sentence, not the guard's and then ours


@pytest.mark.parametrize("spec", ["pro-1k"])
def test_professional_private_address_needs_an_active_peering(api, org, spec):
    professional = DeploymentFactory(organization=org, spec_id=spec, target_spec_id=spec, tier="professional")
    response = put(api, professional, config_body("http://10.0.0.1/auth"))
    assert response.status_code == 400, response.content
    message = response.json()["errors"]["authentication.url"][0]
    assert message == ("10.0.0.1 is a private address; a private address needs an active VPC peering whose CIDR "
                       "contains it, and this deployment has none.")


def test_professional_private_address_inside_an_active_peering_is_accepted(api, org):
    from deployments.tests.factories import PeeringFactory

    professional = DeploymentFactory(organization=org, spec_id="pro-1k", target_spec_id="pro-1k", tier="professional")
    PeeringFactory(organization=org, deployment=professional, cidr="10.0.0.0/16", status="pending")
    assert put(api, professional, config_body("http://10.0.0.1/auth")).status_code == 400  # not active yet
    PeeringFactory(organization=org, deployment=professional, cidr="10.1.0.0/16", status="active")
    assert put(api, professional, config_body("http://10.1.2.3/auth")).status_code == 200
    response = put(api, professional, config_body("http://10.2.0.1/auth"))  # outside every active CIDR
    assert response.status_code == 400 and "active VPC peering" in response.json()["detail"]


def professional_with_loopback_peering(org) -> Deployment:
    """A professional deployment whose active peering's CIDR is 127.0.0.0/8: it stands in for the customer's
    private network (tests talk to loopback only); the loopback setting is off, so only the peering lets the
    URL through, exactly as 10.x would be let through in production."""
    from deployments.tests.factories import PeeringFactory

    professional = DeploymentFactory(organization=org, spec_id="pro-1k", target_spec_id="pro-1k", tier="professional")
    PeeringFactory(organization=org, deployment=professional, cidr="127.0.0.0/8", status="active")
    return professional


def test_a_url_inside_a_peering_is_saved_but_the_control_plane_never_calls_it(api, org, auth_service):
    professional = professional_with_loopback_peering(org)
    with override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=False):
        assert put(api, professional, config_body(auth_service.url)).status_code == 200
        response = test_call(api, professional, username="u")
    assert response.status_code == 409, response.content
    assert response["Content-Type"] == "application/problem+json"
    detail = response.json()["detail"]
    assert "inside the deployment's network" in detail and "MQTT client" in detail
    assert auth_service.received == []  # nothing left the control plane towards the customer's network
    assert HttpAuthConfig.objects.get(deployment=professional).last_tests == {}


def test_loopback_is_refused_unless_the_setting_allows_it(api, deployment, auth_service):
    with override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=False):
        assert put(api, deployment, config_body(auth_service.url)).status_code == 400
    assert put(api, deployment, config_body(auth_service.url)).status_code == 200


# --- the test call ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "decision"), [(200, "allow"), (204, "allow"), (401, "deny"), (403, "deny"),
                                                  (500, "ignore"), (503, "ignore")])
def test_decision_follows_the_status_code(api, deployment, auth_service, status, decision):
    assert put(api, deployment, config_body(auth_service.url)).status_code == 200
    auth_service.answer(status)
    response = test_call(api, deployment, clientid="c1", username="u", password="p", peerhost="203.0.113.9")
    assert response.status_code == 200, response.content
    result = response.json()
    assert result["decision"] == decision
    assert result["status_code"] == status
    assert result["latency_ms"] is not None and result["latency_ms"] >= 0
    assert bool(result["error"]) is (decision == "ignore")


@pytest.mark.parametrize(("body", "decision", "superuser"), [
    ({"result": "deny"}, "deny", None),
    ({"result": "ignore"}, "ignore", None),
    ({"result": "allow", "is_superuser": True}, "allow", True),
    ({"result": "maybe"}, "allow", None),  # not a result the broker knows: the status code decides
])
def test_a_json_result_decides(api, deployment, auth_service, body, decision, superuser):
    put(api, deployment, config_body(auth_service.url))
    auth_service.answer(200, body)
    result = test_call(api, deployment, username="u").json()
    assert (result["decision"], result["is_superuser"]) == (decision, superuser)


def test_a_timeout_is_ignore_with_an_error(api, deployment, auth_service):
    put(api, deployment, config_body(auth_service.url, timeout_ms=200))
    auth_service.delay_s = 1.0
    result = test_call(api, deployment, username="u").json()
    assert result["decision"] == "ignore"
    assert result["status_code"] is None
    assert "timeout" in result["error"]


def test_a_closed_port_is_ignore_with_a_connection_error(api, deployment, auth_service):
    put(api, deployment, config_body("http://127.0.0.1:9/auth"))
    result = test_call(api, deployment, username="u").json()
    assert result["decision"] == "ignore" and result["status_code"] is None and result["error"]


@pytest.mark.parametrize("payload", BANNERS)
def test_what_the_service_sends_is_never_shown_back(api, deployment, payload):
    """A URL at a Redis or SSH port must not read its banner back to the customer: status, latency, reason."""
    with raw_server(payload) as url, override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True):
        put(api, deployment, config_body(url + "auth"))
        response = test_call(api, deployment, username="u")
        stored = api.get(f"/api/v1/deployments/{deployment.id}/http-auth").json()["last_tests"]
    assert response.status_code == 200, response.content
    assert response.json()["decision"] == "ignore" and response.json()["error"].startswith("protocol: The server")
    assert "SECRET" not in response.content.decode() and "SECRET" not in json.dumps(stored)


def test_an_error_answer_shows_its_status_not_its_body(api, deployment, auth_service):
    put(api, deployment, config_body(auth_service.url))
    auth_service.answer(500, b"SECRET stack trace from db01")
    result = test_call(api, deployment, username="u").json()
    assert result["status_code"] == 500 and result["latency_ms"] is not None
    assert "500" in result["error"] and "SECRET" not in json.dumps(result)


SPECIAL = 'a&b=c "quoted" \\ ü 日本 %41 +'


def test_post_sends_a_json_body_with_placeholders_escaped(api, deployment, auth_service):
    params = {"clientid": "${clientid}", "username": "${username}", "password": "${password}",
              "peer": "${peerhost}", "combo": "u=${username};c=${clientid}", "fixed": "v1", "cert": "${cert_subject}"}
    put(api, deployment, config_body(auth_service.url, params=params))
    result = test_call(api, deployment, clientid="dev-1", username=SPECIAL, password='p"w', peerhost="198.51.100.7")
    assert result.json()["decision"] == "allow"
    request = auth_service.received[-1]
    assert request.method == "POST" and request.path == "/mqtt/auth" and request.query == {}
    assert request.headers["content-type"] == "application/json"
    assert request.headers["authorization"] == SECRET
    assert json.loads(request.body.decode("utf-8")) == {
        "clientid": "dev-1", "username": SPECIAL, "password": 'p"w', "peer": "198.51.100.7",
        "combo": f"u={SPECIAL};c=dev-1", "fixed": "v1", "cert": "",
    }


def test_get_sends_the_params_url_encoded_in_the_query(api, deployment, auth_service):
    params = {"clientid": "${clientid}", "username": "${username}", "password": "${password}"}
    put(api, deployment, config_body(auth_service.url + "?v=1", method="GET", params=params))
    test_call(api, deployment, clientid="a b", username=SPECIAL, password="&password=x")
    request = auth_service.received[-1]
    assert request.method == "GET" and request.body == b""
    assert "content-type" not in request.headers
    assert request.query == {"v": ["1"], "clientid": ["a b"], "username": [SPECIAL], "password": ["&password=x"]}


def test_the_acl_request_carries_topic_and_action(api, deployment, auth_service):
    acl = {"method": "POST", "url": auth_service.url.replace("auth", "acl"), "headers": {"X-Key": "k"},
           "params": {"topic": "${topic}", "action": "${action}", "username": "${username}"}}
    put(api, deployment, config_body(auth_service.url, authorization=acl))
    auth_service.answer(403)
    result = test_call(api, deployment, kind="authorization", username="u", topic="t/+/ü", action="subscribe")
    assert result.json()["decision"] == "deny"
    request = auth_service.received[-1]
    assert request.path == "/mqtt/acl" and request.headers["x-key"] == "k"
    assert json.loads(request.body) == {"topic": "t/+/ü", "action": "subscribe", "username": "u"}


def test_testing_an_unconfigured_acl_is_400_and_no_config_is_404(api, deployment, auth_service):
    assert test_call(api, deployment, username="u").status_code == 404
    put(api, deployment, config_body(auth_service.url))
    response = test_call(api, deployment, kind="authorization", username="u")
    assert response.status_code == 400 and "kind" in response.json()["errors"]


def test_last_results_are_kept_with_their_latency(api, deployment, auth_service):
    put(api, deployment, config_body(auth_service.url, timeout_ms=3000))
    auth_service.answer(401)
    test_call(api, deployment, username="u")
    auth_service.answer(200)
    auth_service.delay_s = 1.05
    test_call(api, deployment, username="u")
    last = api.get(f"/api/v1/deployments/{deployment.id}/http-auth").json()["last_tests"]
    assert last["authorization"] is None
    assert last["authentication"]["decision"] == "allow" and last["authentication"]["status_code"] == 200
    assert last["authentication"]["latency_ms"] >= 1000 and last["authentication"]["slow"] is True
    assert last["authentication"]["tested_at"]


def test_the_test_call_re_checks_the_address(api, deployment, auth_service):
    put(api, deployment, config_body(auth_service.url))
    with override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=False):
        result = test_call(api, deployment, username="u").json()
    assert result["decision"] == "ignore" and "blocked" in result["error"]
    assert auth_service.received == []


# --- who may do what --------------------------------------------------------------------------------
def test_viewer_reads_but_cannot_change_or_test(org, deployment, make_client, api, auth_service):
    put(api, deployment, config_body(auth_service.url))
    _, secret = make_api_key(org, role=Role.VIEWER)
    viewer = make_client(secret)
    assert viewer.get(f"/api/v1/deployments/{deployment.id}/http-auth").status_code == 200
    assert put(viewer, deployment, config_body(auth_service.url)).status_code == 403
    assert test_call(viewer, deployment, username="u").status_code == 403
    assert viewer.delete(f"/api/v1/deployments/{deployment.id}/http-auth").status_code == 403
    assert auth_service.received == []


def test_a_stranger_gets_404(deployment, make_client, auth_service):
    _, secret = make_api_key(OrganizationFactory(), role=Role.OWNER)
    stranger = make_client(secret)
    assert put(stranger, deployment, config_body(auth_service.url)).status_code == 404
    assert stranger.get(f"/api/v1/deployments/{deployment.id}/http-auth").status_code == 404
    assert test_call(stranger, deployment, username="u").status_code == 404
    assert not HttpAuthConfig.objects.exists()


def test_deleting_deployments_refuse_changes(api, org, auth_service):
    deleting = DeploymentFactory(organization=org, status="deleting")
    assert put(api, deleting, config_body(auth_service.url)).status_code == 409


def test_admin_never_shows_header_values(client, deployment, api, auth_service):

    put(api, deployment, config_body(auth_service.url))
    staff = operator_user("ops@example.com", "an-operator-passphrase")
    client.force_login(staff)
    text = client.get(f"/ops/deployments/deployment/{quote(deployment.id)}/change/").content.decode()
    assert "MQCLOUD_HTTP_AUTHN_HEADER_0" in text  # the config is there, by reference
    assert "s3cr3t" not in text and base64.b64encode(SECRET.encode()).decode() not in text
