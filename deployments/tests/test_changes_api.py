"""``POST /deployments/{id}/preview`` and ``POST /deployments/{id}/copy-settings`` (issue 18, items 4 and 5)."""

from __future__ import annotations

import json

import pytest
import time_machine

from billing.models import Subscription
from deployments.models import HttpAuthConfig, MqttAccess, Operation, Spec
from deployments.preview import scale_disconnect
from deployments.tests.factories import DeploymentFactory
from deployments.tests.http_auth_service import serve_auth
from projects.models import AuditEvent
from projects.roles import Role
from projects.tests.factories import OrganizationFactory, ProjectFactory, make_api_key
from tests.support import console_login, console_url

pytestmark = pytest.mark.django_db

# A Wednesday: outside the platform's window (Sundays 02:00-06:00 UTC).
WEDNESDAY = "2027-03-17T12:00:00Z"
SUNDAY_IN_WINDOW = "2027-03-21T03:00:00Z"


def preview(api, deployment, body):
    return api.post(f"/api/v1/deployments/{deployment.pk}/preview", body, format="json")


def spec(spec_id: str) -> Spec:
    return Spec.objects.get(id=spec_id)


@time_machine.travel(WEDNESDAY, tick=False)
def test_scale_up_a_multi_node_deployment_is_a_rolling_restart_with_the_price_change(api, org):
    deployment = DeploymentFactory(organization=org, spec=spec("pro-1k"))
    response = preview(api, deployment, {"change": "scale", "spec": "pro-10k"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["change"] == "scale" and (body["spec_before"], body["spec_after"]) == ("pro-1k", "pro-10k")
    assert body["disconnect"]["kind"] == "rolling"
    assert body["disconnect"]["estimated_seconds"] == 2 * 60  # the 2 nodes of pro-1k, one at a time
    assert body["price"] == {"currency": "USD", "hourly_before": "0.6000", "hourly_after": "1.8000",
                             "monthly_before": "438.00", "monthly_after": "1314.00"}
    assert body["proration"] is None  # hourly: the hours are billed at the new price
    assert body["window"] == {"in_window_now": False, "next_window_start": "2027-03-21T02:00:00.000000Z",
                              "next_window_end": "2027-03-21T06:00:00.000000Z"}
    assert Operation.objects.count() == 0 and not AuditEvent.objects.exists()  # read-only


@time_machine.travel(WEDNESDAY, tick=False)
def test_scale_down_multi_node(api, org):
    deployment = DeploymentFactory(organization=org, spec=spec("pro-10k"))
    body = preview(api, deployment, {"change": "scale", "spec": "pro-5k"}).json()
    assert body["disconnect"]["kind"] == "rolling" and body["disconnect"]["estimated_seconds"] == 120
    assert body["price"]["hourly_after"] == "1.1000" and body["price"]["monthly_after"] == "803.00"


@time_machine.travel(WEDNESDAY, tick=False)
def test_single_node_scale_surges_so_clients_move_twice(api, deployment):
    body = preview(api, deployment, {"change": "scale", "spec": "basic-5k"}).json()
    assert body["disconnect"]["kind"] == "rolling"
    assert body["disconnect"]["estimated_seconds"] == 120
    assert "twice" in body["disconnect"]["detail"]


@time_machine.travel(SUNDAY_IN_WINDOW, tick=False)
def test_inside_the_window_now(api, deployment):
    body = preview(api, deployment, {"change": "scale", "spec": "basic-5k"}).json()
    assert body["window"] == {"in_window_now": True, "next_window_start": "2027-03-21T02:00:00.000000Z",
                              "next_window_end": "2027-03-21T06:00:00.000000Z"}


@time_machine.travel(WEDNESDAY, tick=False)
def test_switch_to_annual_quotes_the_term_and_nothing_restarts(api, deployment):
    response = preview(api, deployment, {"change": "switch_to_annual"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["disconnect"] == {"kind": "none", "estimated_seconds": 0,
                                  "detail": "Only billing changes: nothing restarts."}
    assert body["price"]["hourly_before"] == "0.1800" and body["price"]["monthly_before"] == "131.40"
    assert body["price"]["monthly_after"] == "111.67"  # 1340.00 / 12
    assert body["proration"]["kind"] == "annual_term" and body["proration"]["amount"] == "1340.00"
    assert body["proration"]["invoiced_on"] == "2027-04-01"
    assert body["proration"]["term_end"].startswith("2028-03-17")
    assert not Subscription.objects.filter(mode="annual").exists()


@time_machine.travel(WEDNESDAY, tick=False)
def test_scale_inside_an_annual_term_quotes_the_prorated_difference(api, deployment):
    assert api.post(f"/api/v1/deployments/{deployment.pk}/subscription/switch-to-annual", {"renew": False},
                    format="json").status_code == 200
    assert preview(api, deployment, {"change": "switch_to_annual"}).status_code == 409
    body = preview(api, deployment, {"change": "scale", "spec": "basic-5k"}).json()
    # the whole term remains: the difference of the annual prices
    assert body["proration"]["kind"] == "scale_in_term" and body["proration"]["amount"] == "2011.00"


@pytest.mark.parametrize("payload, fields", [
    ({}, {"change"}),
    ({"change": "resize"}, {"change"}),
    ({"change": "scale"}, {"spec"}),
    ({"change": "scale", "spec": "nope"}, {"spec"}),
    ({"change": "scale", "spec": "pro-1k"}, {"spec"}),  # another tier
    ({"change": "scale", "spec": "basic-1k"}, {"spec"}),  # the one it runs
    ({"change": "switch_to_annual", "colour": "red"}, {"colour"}),
    ({"change": "upgrade", "version": "5.8.0"}, {"version"}),  # older than the deployment's
    ({"change": "upgrade"}, {"version"}),
])
def test_bad_bodies_are_field_errors(api, deployment, payload, fields):
    response = preview(api, deployment, payload)
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert set(response.json()["errors"]) == fields


def test_a_viewer_may_preview_a_stranger_gets_404(make_client, org, deployment):
    _, viewer = make_api_key(org, role=Role.VIEWER)
    assert preview(make_client(viewer), deployment, {"change": "switch_to_annual"}).status_code == 200
    _, stranger = make_api_key(OrganizationFactory())
    response = preview(make_client(stranger), deployment, {"change": "switch_to_annual"})
    assert response.status_code == 404 and response["Content-Type"] == "application/problem+json"


def test_preview_of_a_scale_of_a_stopped_deployment_is_409(api, org):
    deployment = DeploymentFactory(organization=org, status="stopped")
    assert preview(api, deployment, {"change": "scale", "spec": "basic-5k"}).status_code == 409


# --- copy settings -----------------------------------------------------------------------------------
SECRET = "Bearer s3cr3t-value-never-shown"
ACL = {"rules": [{"permission": "allow", "who": {"username": "sensor"}, "action": "publish",
                  "topics": ["sensors/${username}/#"]}], "no_match": "deny"}


def copy(api, target, source_id):
    return api.post(f"/api/v1/deployments/{target.pk}/copy-settings", {"from": source_id}, format="json")


@pytest.fixture
def configured(api, org, deployment):
    # A real service on loopback (the guarded client may reach it while it runs): the URL check passes as in prod.
    with serve_auth() as service:
        http_auth = {"enabled": True,
                     "authentication": {"method": "POST", "url": service.url, "headers": {"Authorization": SECRET},
                                        "params": {"u": "${username}"}, "timeout_ms": 3000}}
        response = api.put(f"/api/v1/deployments/{deployment.pk}/http-auth", http_auth, format="json")
        assert response.status_code == 200, response.content
        assert api.put(f"/api/v1/deployments/{deployment.pk}/acl", ACL, format="json").status_code == 200
        yield deployment


def test_copy_settings_makes_the_configs_equal_without_showing_secrets(api, org, configured):
    target = DeploymentFactory(organization=org)
    response = copy(api, target, configured.pk)
    assert response.status_code == 202, response.content
    body = response.json()
    assert response["Location"] == f"/api/v1/operations/{body['operation']}"
    assert body["type"] == "copy_settings" and body["status"] == "succeeded"
    assert [s["name"] for s in body["steps"]] == ["http_auth", "acl", "apply"]
    assert api.get(f"/api/v1/deployments/{target.pk}/http-auth").json()["authentication"] == \
        api.get(f"/api/v1/deployments/{configured.pk}/http-auth").json()["authentication"]
    assert api.get(f"/api/v1/deployments/{target.pk}/acl").json()["rules"] == ACL["rules"]
    assert HttpAuthConfig.objects.get(deployment=target).authn_headers == json.dumps(
        {"Authorization": SECRET}, sort_keys=True)
    assert MqttAccess.objects.get(deployment=target).generation == 1
    event = AuditEvent.objects.get(action="deployment.settings.copy")
    assert SECRET not in response.content.decode() and SECRET not in json.dumps(event.changes)
    assert event.changes["http_auth"]["after"]["headers"]["authentication"] == ["Authorization"]
    # once more: nothing changes
    assert copy(api, target, configured.pk).status_code == 202
    assert MqttAccess.objects.get(deployment=target).generation == 1


def test_copy_settings_refusals(api, org, make_client, configured):
    assert copy(api, configured, configured.pk).status_code == 400
    assert copy(api, configured, "dep_x").status_code == 404
    other = DeploymentFactory()  # another organization's
    assert copy(api, configured, other.pk).status_code == 404
    _, stranger = make_api_key(other.organization)
    assert copy(make_client(stranger), other, configured.pk).status_code == 404
    scaling = DeploymentFactory(organization=org, status="scaling")
    response = copy(api, scaling, configured.pk)
    assert response.status_code == 409 and response["Content-Type"] == "application/problem+json"
    _, viewer = make_api_key(org, role=Role.VIEWER)
    assert copy(make_client(viewer), DeploymentFactory(organization=org), configured.pk).status_code == 403
    assert copy(api, configured, None).status_code == 400
    assert not Operation.objects.filter(type="copy_settings").exists()


# --- console: the scale confirmation shows the preview ---------------------------------------------------
@time_machine.travel(WEDNESDAY, tick=False)
def test_the_scale_confirmation_shows_disconnect_month_price_and_window():
    client, member = console_login()
    deployment = DeploymentFactory(organization=member.organization, spec=spec("pro-1k"))
    response = client.get(console_url("deployment-scale", deployment.id), {"spec": "pro-10k"})
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-kind="rolling"' in body and "about 2 minutes in all" in body
    assert "About a month running (730 h)" in body and "$438.00" in body and "$1,314.00" in body
    assert "outside this deployment's maintenance window; the next one opens Sun 21 Mar 02:00 UTC" in body


def test_a_single_node_growing_into_several_is_a_full_restart():
    # The rule itself: no scale in today's catalog does this.
    three = Spec(id="x", tier="basic", replicas=3)
    result = scale_disconnect(spec("basic-1k"), three)
    assert (result.kind, result.estimated_seconds) == ("full_restart", 60)


def test_a_project_limited_key_previews_only_its_projects(make_client, org, deployment):
    _, limited = make_api_key(org, role=Role.DEVELOPER, projects=[ProjectFactory(organization=org).pk])
    assert preview(make_client(limited), deployment, {"change": "switch_to_annual"}).status_code == 404


def test_copying_from_a_deployment_without_http_auth_removes_the_targets(api, org, configured):
    source = DeploymentFactory(organization=org)
    assert copy(api, configured, source.pk).status_code == 202
    assert not HttpAuthConfig.objects.filter(deployment=configured).exists()
    assert MqttAccess.objects.get(deployment=configured).acl_rules == []
    assert api.get(f"/api/v1/deployments/{configured.pk}/http-auth").status_code == 404


def test_the_switch_to_annual_confirmation_shows_no_disconnect_and_the_month():
    client, member = console_login(Role.BILLING)
    deployment = DeploymentFactory(organization=member.organization)
    body = client.get(console_url("deployment-switch-to-annual", deployment.id)).content.decode()
    assert 'data-kind="none"' in body and "nothing restarts" in body
    assert "$131.40 by the hour (730 h) → $111.67" in body


def test_the_source_service_url_must_be_allowed_for_the_target(api, org, deployment):
    with serve_auth() as service:
        http_auth = {"enabled": True, "authentication": {"method": "POST", "url": service.url, "headers": {},
                                                          "params": {}, "timeout_ms": 3000}}
        assert api.put(f"/api/v1/deployments/{deployment.pk}/http-auth", http_auth,
                       format="json").status_code == 200
    # Loopback is allowed only while the test service runs: now the URL is refused, for the copy as for a PUT.
    target = DeploymentFactory(organization=org)
    response = copy(api, target, deployment.pk)
    assert response.status_code == 400 and "authentication.url" in response.json()["errors"]
    assert not HttpAuthConfig.objects.filter(deployment=target).exists()


def test_an_upgrade_preview_is_a_rolling_restart_at_the_same_price_within_the_window_or_not(api, org):
    deployment = DeploymentFactory(organization=org, spec=spec("pro-10k"))
    response = preview(api, deployment, {"change": "upgrade", "version": "5.9.1"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["disconnect"]["kind"] == "rolling" and "one at a time" in body["disconnect"]["detail"]
    assert body["disconnect"]["estimated_seconds"] == deployment.spec.replicas * 60
    assert body["price"]["hourly_before"] == body["price"]["hourly_after"] and body["proration"] is None
    assert set(body["window"]) == {"in_window_now", "next_window_start", "next_window_end"}
