"""The deployment's Access area in the console: MQTT users (create, reset, superuser, delete, import)."""

from __future__ import annotations

import re

import pytest

from deployments.models import MqttUser
from deployments.mqtt_access import hashing
from deployments.tests.factories import DeploymentFactory
from projects.models import AuditEvent
from projects.roles import Role
from projects.tests.factories import OrganizationFactory, ProjectFactory
from tests.support import console_login as logged_in
from tests.support import console_url as url

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner():
    client, member = logged_in()
    return client, DeploymentFactory(organization=member.organization)


def user(deployment, username: str, password: str = "secret-pass", superuser: bool = False) -> MqttUser:
    stored = hashing.hash_password(password)
    return MqttUser.objects.create(deployment=deployment, username=username, username_key=username.casefold(),
                                   algorithm=stored.algorithm, password_hash=stored.password_hash,
                                   salt=stored.salt, is_superuser=superuser)


def shown_password(body: str) -> str:
    match = re.search(r'<code id="mqtt-password">([^<]+)</code>', body)
    assert match, body[:3000]
    return match.group(1)


def test_create_without_password_shows_the_generated_one_once(owner):
    client, deployment = owner
    body = client.get(url("deployment-mqtt-users", deployment.id)).content.decode()
    assert "No users yet" in body and "csrfmiddlewaretoken" in body
    response = client.post(url("deployment-mqtt-users", deployment.id), {"username": "sensor-1", "password": ""})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    body = response.content.decode()
    password = shown_password(body)
    assert "will never be shown again" in body and 'id="copy-password"' in body
    stored = MqttUser.objects.get(deployment=deployment, username="sensor-1")
    assert hashing.verify_password(hashing.PasswordHash(stored.algorithm, stored.password_hash, stored.salt),
                                   password)
    listing = client.get(url("deployment-mqtt-users", deployment.id)).content.decode()
    assert "sensor-1" in listing and password not in listing
    assert AuditEvent.objects.filter(action="deployment.mqtt_user.create").exists()


def test_create_with_a_password_redirects_and_errors_show_next_to_the_field(owner):
    client, deployment = owner
    response = client.post(url("deployment-mqtt-users", deployment.id),
                           {"username": "dev", "password": "long-enough-1", "is_superuser": "on"})
    assert response.status_code == 302
    assert MqttUser.objects.get(deployment=deployment, username="dev").is_superuser
    response = client.post(url("deployment-mqtt-users", deployment.id), {"username": "DEV", "password": "short"})
    assert response.status_code == 400
    body = response.content.decode()
    assert re.search(r'field-invalid">\s*<label for="id_password".*?At least 8 characters', body, re.S)
    response = client.post(url("deployment-mqtt-users", deployment.id), {"username": "DEV", "password": ""})
    assert response.status_code == 400
    assert re.search(r'field-invalid">\s*<label for="id_username".*?Already exists', response.content.decode(), re.S)


def test_list_filters_by_username_and_paginates(owner):
    client, deployment = owner
    for index in range(55):
        user(deployment, f"sensor-{index:02d}")
    user(deployment, "zeta-gateway")
    body = client.get(url("deployment-mqtt-users", deployment.id)).content.decode()
    assert "sensor-00" in body and "zeta-gateway" not in body and "Page 1 of 2" in body
    body = client.get(url("deployment-mqtt-users", deployment.id), {"page": 2}).content.decode()
    assert "zeta-gateway" in body
    body = client.get(url("deployment-mqtt-users", deployment.id), {"username": "ZETA"}).content.decode()
    assert "zeta-gateway" in body and "sensor-00" not in body


def test_reset_password_superuser_toggle_and_delete(owner):
    client, deployment = owner
    target = user(deployment, "lamp", password="old-password")
    response = client.post(url("deployment-mqtt-user-password", deployment.id, target.id), {"password": ""})
    assert response.status_code == 200
    password = shown_password(response.content.decode())
    target.refresh_from_db()
    assert hashing.verify_password(hashing.PasswordHash(target.algorithm, target.password_hash, target.salt),
                                   password)
    assert client.post(url("deployment-mqtt-user-superuser", deployment.id, target.id),
                       {"is_superuser": "on"}).status_code == 302
    target.refresh_from_db()
    assert target.is_superuser
    confirm = client.get(url("deployment-mqtt-user-delete", deployment.id, target.id)).content.decode()
    assert "lamp" in confirm and "csrfmiddlewaretoken" in confirm
    assert client.post(url("deployment-mqtt-user-delete", deployment.id, target.id)).status_code == 302
    assert not MqttUser.objects.filter(pk=target.pk).exists()
    assert AuditEvent.objects.filter(action="deployment.mqtt_user.delete").exists()


def test_reset_with_a_bad_password_says_so_next_to_the_field(owner):
    client, deployment = owner
    target = user(deployment, "lamp")
    response = client.post(url("deployment-mqtt-user-password", deployment.id, target.id), {"password": "short"})
    assert response.status_code == 400 and "At least 8 characters" in response.content.decode()


CSV = "username,password\nsensor-1,long-enough-1\nsensor-2,short\nsensor-3,long-enough-3\n"


def test_import_previews_then_applies(owner):
    client, deployment = owner
    user(deployment, "sensor-3", password="long-enough-3")
    response = client.post(url("deployment-mqtt-users-import", deployment.id), {"csv_text": CSV, "preview": "1"})
    body = response.content.decode()
    assert response.status_code == 400  # one row has an error: shown, nothing changed
    assert re.search(r"sensor-2.*?At least 8 characters", body, re.S)
    assert "1 to create" in body and "1 unchanged" in body
    assert not MqttUser.objects.filter(username="sensor-1").exists()
    fixed = CSV.replace("sensor-2,short", "sensor-2,long-enough-2")
    body = client.post(url("deployment-mqtt-users-import", deployment.id),
                       {"csv_text": fixed, "preview": "1"}).content.decode()
    assert "2 to create" in body and 'name="apply"' in body
    response = client.post(url("deployment-mqtt-users-import", deployment.id), {"csv_text": fixed, "apply": "1"})
    assert response.status_code == 302
    assert MqttUser.objects.filter(deployment=deployment).count() == 3


def test_import_accepts_an_uploaded_hashed_file_and_rejects_bad_columns(owner):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client, deployment = owner
    stored = hashing.hash_password("long-enough-9")
    upload = SimpleUploadedFile("users.csv", f"hashed,{stored.password_hash},{stored.salt},{stored.algorithm}\n"
                                .encode())
    response = client.post(url("deployment-mqtt-users-import", deployment.id), {"csv_file": upload, "apply": "1"})
    assert response.status_code == 302, response.content.decode()[:3000]
    assert MqttUser.objects.get(deployment=deployment, username="hashed").password_hash == stored.password_hash
    response = client.post(url("deployment-mqtt-users-import", deployment.id),
                           {"csv_text": "a,b,c\n", "preview": "1"})
    assert response.status_code == 400 and "2 columns" in response.content.decode()
    response = client.post(url("deployment-mqtt-users-import", deployment.id), {"csv_text": "", "preview": "1"})
    assert response.status_code == 400 and "Paste CSV or choose a file" in response.content.decode()


def test_viewer_sees_users_but_gets_no_forms_and_403_on_changes():
    client, member = logged_in(Role.VIEWER)
    deployment = DeploymentFactory(organization=member.organization)
    target = user(deployment, "lamp")
    body = client.get(url("deployment-mqtt-users", deployment.id)).content.decode()
    assert "lamp" in body and 'name="username" maxlength' not in body and "Delete" not in body
    assert client.post(url("deployment-mqtt-users", deployment.id), {"username": "x"}).status_code == 403
    for name in ("deployment-mqtt-user-password", "deployment-mqtt-user-superuser", "deployment-mqtt-user-delete"):
        assert client.post(url(name, deployment.id, target.id), {"is_superuser": "on"}).status_code == 403, name
    assert client.get(url("deployment-mqtt-users-import", deployment.id)).status_code == 403
    assert client.post(url("deployment-mqtt-users-import", deployment.id),
                       {"csv_text": CSV, "apply": "1"}).status_code == 403
    assert MqttUser.objects.filter(deployment=deployment).count() == 1


def test_other_organizations_and_other_projects_are_404():
    client, member = logged_in()
    stranger = DeploymentFactory()
    target = user(stranger, "lamp")
    assert client.get(url("deployment-mqtt-users", stranger.id)).status_code == 404
    assert client.post(url("deployment-mqtt-users", stranger.id), {"username": "x"}).status_code == 404
    assert client.post(url("deployment-mqtt-user-delete", stranger.id, target.id)).status_code == 404
    assert client.post(url("deployment-mqtt-users-import", stranger.id),
                       {"csv_text": CSV, "apply": "1"}).status_code == 404
    # A user id of another deployment, through one's own deployment: 404 too.
    own = DeploymentFactory(organization=member.organization)
    assert client.post(url("deployment-mqtt-user-delete", own.id, target.id)).status_code == 404
    org = OrganizationFactory()
    mine, theirs = ProjectFactory(organization=org), ProjectFactory(organization=org)
    hidden = DeploymentFactory(organization=org, project=theirs)
    limited, _ = logged_in(Role.DEVELOPER, organization=org, projects=[mine])
    for name in ("deployment-mqtt-users", "deployment-acl", "deployment-clients"):
        assert limited.get(url(name, hidden.id)).status_code == 404, name
    assert limited.post(url("deployment-acl-check", hidden.id), {}).status_code == 404
    assert MqttUser.objects.filter(username="lamp").count() == 1


# --- ACL --------------------------------------------------------------------------------------------
def rules_post(rules: list[dict], *, op: str = "save", no_match: str = "deny") -> dict:
    data = {"rules-TOTAL_FORMS": str(len(rules)), "rules-INITIAL_FORMS": "0", "no_match": no_match, "op": op}
    for index, rule in enumerate(rules):
        for name, value in rule.items():
            data[f"rules-{index}-{name}"] = value
    return data


RULES = [
    {"permission": "deny", "who": "username", "who_value": "mallory", "action": "all", "topics": "#"},
    {"permission": "allow", "who": "all", "action": "publish", "topics": "dev/${username}/#\r\neq raw/#"},
]


def test_acl_save_shows_the_rules_and_whether_they_are_live(owner):
    from deployments.models import MqttAccess

    client, deployment = owner
    body = client.get(url("deployment-acl", deployment.id)).content.decode()
    assert "No rules" in body and "csrfmiddlewaretoken" in body
    response = client.post(url("deployment-acl", deployment.id), rules_post(RULES))
    assert response.status_code == 302, response.content.decode()[:3000]
    access = MqttAccess.objects.get(deployment=deployment)
    assert access.acl_rules == [
        {"permission": "deny", "who": {"username": "mallory"}, "action": "all", "topics": ["#"]},
        {"permission": "allow", "who": "all", "action": "publish", "topics": ["dev/${username}/#", "eq raw/#"]}]
    body = client.get(url("deployment-acl", deployment.id)).content.decode()
    assert "dev/${username}/#\neq raw/#" in body and "Pending" in body
    assert AuditEvent.objects.filter(action="deployment.acl.update").exists()
    access.applied_generation = access.generation
    access.save()
    assert "Live" in client.get(url("deployment-acl", deployment.id)).content.decode()


def test_acl_add_move_and_delete_rules_before_saving(owner):
    client, deployment = owner
    body = client.post(url("deployment-acl", deployment.id), rules_post(RULES, op="add")).content.decode()
    assert 'name="rules-2-topics"' in body and "Unsaved changes" in body
    body = client.post(url("deployment-acl", deployment.id), rules_post(RULES, op="down-0")).content.decode()
    assert body.index("dev/${username}/#") < body.index('value="mallory"')
    body = client.post(url("deployment-acl", deployment.id), rules_post(RULES, op="delete-0")).content.decode()
    assert 'value="mallory"' not in body and 'name="rules-1-topics"' not in body


def test_acl_errors_show_on_their_rule(owner):
    from deployments.models import MqttAccess

    client, deployment = owner
    bad = [RULES[1], {"permission": "allow", "who": "all", "action": "all", "topics": "a/#/b"},
           {"permission": "allow", "who": "clientid", "who_value": "", "action": "all", "topics": "x"}]
    response = client.post(url("deployment-acl", deployment.id), rules_post(bad))
    assert response.status_code == 400
    body = response.content.decode()
    rule_2 = body.split('id="rule-2"')[1].split('id="rule-3"')[0]
    assert "must be a whole level and the last one" in rule_2
    assert "Enter the client ID" in body.split('id="rule-3"')[1]
    assert not MqttAccess.objects.filter(deployment=deployment).exists()


def test_would_this_be_allowed_names_the_rule(owner):
    client, deployment = owner
    client.post(url("deployment-acl", deployment.id), rules_post(RULES))
    check = url("deployment-acl-check", deployment.id)
    body = client.post(check, {"username": "alice", "clientid": "c1", "action": "publish",
                               "topic": "dev/alice/t"}).content.decode()
    assert "Allowed" in body and "rule 2" in body
    body = client.post(check, {"username": "mallory", "clientid": "c1", "action": "publish",
                               "topic": "dev/mallory/t"}).content.decode()
    assert "Denied" in body and "rule 1" in body
    body = client.post(check, {"username": "alice", "clientid": "c1", "action": "subscribe",
                               "topic": "dev/alice/t"}).content.decode()
    assert "Denied" in body and "No rule matches" in body
    user(deployment, "root", superuser=True)
    body = client.post(check, {"username": "root", "clientid": "c1", "action": "publish",
                               "topic": "x"}).content.decode()
    assert "Allowed" in body and "superuser" in body
    response = client.post(check, {"username": "a", "clientid": "c1", "action": "publish", "topic": "a/+"})
    assert response.status_code == 400 and "wildcards" in response.content.decode()


def test_viewer_reads_the_acl_and_may_check_but_not_save():
    client, member = logged_in(Role.VIEWER)
    deployment = DeploymentFactory(organization=member.organization)
    body = client.get(url("deployment-acl", deployment.id)).content.decode()
    assert 'name="op"' not in body and "Check" in body
    assert client.post(url("deployment-acl", deployment.id), rules_post(RULES)).status_code == 403
    assert client.post(url("deployment-acl-check", deployment.id), {"username": "a", "clientid": "c",
                       "action": "publish", "topic": "t"}).status_code == 200
    stranger = DeploymentFactory()
    assert client.get(url("deployment-acl", stranger.id)).status_code == 404
    assert client.post(url("deployment-acl-check", stranger.id), {}).status_code == 404


# --- connected clients ------------------------------------------------------------------------------
# A real broker (the simulated EMQX) holding one user, with one paho-mqtt client connected to it.
@pytest.fixture
def broker_clients(tmp_path, settings):
    from deployments.models import MANAGEMENT_API_KEY
    from k8s.simulator.broker import start_broker_on_free_address
    from k8s.simulator.broker.tests.mqtt_helpers import Client

    keys = tmp_path / "api_keys"
    deployment = DeploymentFactory()
    keys.write_text(f"{MANAGEMENT_API_KEY}:{deployment.management_api_secret}:administrator\n")
    with start_broker_on_free_address(bootstrap_file=keys, mqtt_port=0, ws_port=0, api_port=0) as broker:
        settings.BROKER_MANAGEMENT_URL_TEMPLATE = f"http://{{endpoint_host}}:{broker.api_port}"
        response = broker.request("POST", "/authentication/password_based:built_in_database/users",
                                  {"user_id": "lamp", "password": "lamp-pass"})
        assert response[0] == 201, response
        lamp = Client(broker, "lamp-1", "lamp", "lamp-pass")
        assert lamp.accepted
        try:
            yield {"mqtt": f"{broker.host}:{broker.mqtt_port}"}, deployment.management_api_secret, lamp
        finally:
            lamp.close()


def on_broker(organization, broker_clients):
    """A deployment of the organization whose endpoints and management API key are the broker's."""
    endpoints, secret, _ = broker_clients
    return DeploymentFactory(organization=organization, endpoints=endpoints, management_api_secret=secret)


ON_LOOPBACK = {"mqtt": "127.0.0.77:1883", "mqtts": "127.0.0.77:8883"}


def test_clients_list_filter_and_disconnect(broker_clients):
    client, member = logged_in()
    deployment = on_broker(member.organization, broker_clients)
    body = client.get(url("deployment-clients", deployment.id)).content.decode()
    assert "lamp-1" in body and "127.0.0." in body and "MQTT 4" in body and "Disconnect" in body
    body = client.get(url("deployment-clients", deployment.id), {"username": "other"}).content.decode()
    assert "lamp-1" not in body and "No connected client matches" in body
    response = client.post(url("deployment-client-disconnect", deployment.id), {"clientid": "lamp-1"}, follow=True)
    assert "lamp-1 was disconnected" in response.content.decode()
    assert broker_clients[2].disconnected.wait(5)
    assert AuditEvent.objects.filter(action="deployment.mqtt_client.disconnect").exists()
    response = client.post(url("deployment-client-disconnect", deployment.id), {"clientid": "lamp-1"}, follow=True)
    assert "is not connected" in response.content.decode()


def test_clients_empty_state_points_to_connect_and_an_unreachable_broker_is_said():
    client, member = logged_in()
    deployment = DeploymentFactory(organization=member.organization)
    body = client.get(url("deployment-clients", deployment.id)).content.decode()
    assert "No client connected" in body and "#connect-title" in body
    unreachable = DeploymentFactory(organization=member.organization, endpoints=ON_LOOPBACK)
    response = client.get(url("deployment-clients", unreachable.id))
    assert response.status_code == 503 and "cannot be reached" in response.content.decode()


def test_viewer_sees_clients_without_disconnect_and_strangers_get_404(broker_clients):
    client, member = logged_in(Role.VIEWER)
    deployment = on_broker(member.organization, broker_clients)
    body = client.get(url("deployment-clients", deployment.id)).content.decode()
    assert "lamp-1" in body and "Disconnect" not in body
    assert client.post(url("deployment-client-disconnect", deployment.id), {"clientid": "lamp-1"}).status_code == 403
    stranger = on_broker(OrganizationFactory(), broker_clients)
    owner, _ = logged_in()
    assert owner.get(url("deployment-clients", stranger.id)).status_code == 404
    assert owner.post(url("deployment-client-disconnect", stranger.id), {"clientid": "lamp-1"}).status_code == 404


def test_acl_refusals_of_the_service_land_on_their_rule(owner):
    client, deployment = owner
    many = "\n".join(f"t/{index}" for index in range(51))
    rules = [RULES[1], {"permission": "allow", "who": "all", "action": "all", "topics": many}]
    response = client.post(url("deployment-acl", deployment.id), rules_post(rules))
    assert response.status_code == 400
    assert "At most 50 topic filters per rule" in response.content.decode().split('id="rule-2"')[1]
