"""The deployment pages of the console, driven through Django's test client."""

from __future__ import annotations

import pytest

from deployments.models import Deployment, DeploymentEvent
from deployments.models import DeploymentStatus as S
from deployments.tests.factories import DeploymentFactory
from projects.models import AuditEvent
from projects.roles import Role
from projects.tests.factories import OrganizationFactory, ProjectFactory
from tests.support import console_login as logged_in
from tests.support import console_page as page
from tests.support import console_url as url

pytestmark = pytest.mark.django_db

ENDPOINTS = {"mqtt": "mq-abc.example.net:1883", "mqtts": "mq-abc.example.net:8883",
             "ws": "mq-abc.example.net:8083", "wss": "mq-abc.example.net:8084"}
LIST_POLL = 'hx-trigger="every 3s"'
STATUS_POLL = 'hx-trigger="every 2s"'


def create_data(project, **overrides) -> dict:
    return {"project": project.id, "name": "telemetry", "region": "aws-us-east-1", "spec": "basic-1k"} | overrides


# --- list -------------------------------------------------------------------------------------------
def test_nav_entry_comes_first_and_the_empty_state_offers_to_create():
    client, member = logged_in()
    ProjectFactory(organization=member.organization)
    body = page(client, "deployments")
    nav = body.split('class="sidenav"')[1]
    assert nav.index(">Deployments<") < nav.index(">Projects<")
    assert "No deployments yet" in body
    assert f'href="{url("deployment-create")}"' in body


def test_empty_state_without_projects_points_to_projects_first():
    client, _ = logged_in()
    body = page(client, "deployments")
    assert "Create a project" in body
    assert f'href="{url("deployment-create")}"' not in body


def test_list_shows_rows_badges_and_filters():
    client, member = logged_in()
    org = member.organization
    alpha, beta = ProjectFactory(organization=org, name="alpha"), ProjectFactory(organization=org, name="beta")
    running = DeploymentFactory(organization=org, project=alpha, name="up", endpoints=ENDPOINTS)
    failed = DeploymentFactory(organization=org, project=alpha, name="broken", status=S.FAILED,
                               status_reason="quota exceeded in the cluster")
    stopped = DeploymentFactory(organization=org, project=beta, name="resting", status=S.STOPPED)
    DeploymentFactory(organization=org, project=beta, name="gone", status=S.DELETED)
    body = page(client, "deployments")
    for deployment in (running, failed, stopped):
        assert f'id="deployment-{deployment.id}"' in body
    assert "gone" not in body
    assert "mq-abc.example.net" in body and "AWS N. Virginia" in body and "Basic 1K" in body
    assert "badge-dep-running" in body and "badge-dep-stopped" in body
    assert 'badge-dep-failed" title="quota exceeded in the cluster"' in body
    assert LIST_POLL not in body  # nothing is moving: an idle page does not poll

    only_failed = client.get(url("deployments") + "?status=failed").content.decode()
    assert f'id="deployment-{failed.id}"' in only_failed and f'id="deployment-{running.id}"' not in only_failed
    only_beta = client.get(url("deployments") + f"?project={beta.id}").content.decode()
    assert f'id="deployment-{stopped.id}"' in only_beta and f'id="deployment-{running.id}"' not in only_beta
    nothing = client.get(url("deployments") + "?status=scaling").content.decode()
    assert "No deployments match" in nothing


def test_list_polls_only_while_something_is_transitional():
    client, member = logged_in()
    deployment = DeploymentFactory(organization=member.organization, status=S.PENDING)
    body = page(client, "deployments")
    assert LIST_POLL in body and 'class="spinner"' in body
    partial = page(client, "deployments", HX_Request="true")
    assert partial.lstrip().startswith('<tbody id="deployment-rows"') and "<html" not in partial
    assert LIST_POLL in partial
    Deployment.objects.filter(pk=deployment.pk).update(status=S.RUNNING)
    partial = page(client, "deployments", HX_Request="true")
    assert LIST_POLL not in partial and "badge-dep-running" in partial


def test_list_poll_keeps_the_filters():
    client, member = logged_in()
    DeploymentFactory(organization=member.organization, status=S.PROVISIONING)
    body = client.get(url("deployments") + "?status=provisioning").content.decode()
    assert 'hx-get="/console/deployments?status=provisioning"' in body


# --- create -----------------------------------------------------------------------------------------
def test_create_page_shows_specs_by_tier_with_prices():
    client, member = logged_in()
    ProjectFactory(organization=member.organization)
    body = page(client, "deployment-create")
    assert "Basic 1K" in body and "Professional 100K" in body
    assert "$0.18" in body and "$1,340" in body and "save 15% with annual" in body and "about $131.40 / month" in body
    assert "1,000</strong> connections" in body
    assert 'data-tiers="professional flagship"' in body  # Singapore: no basic tier
    assert "Flagship" not in body.split('id="size-title"')[1]


def test_create_page_prices_in_the_organization_currency_and_flagship_only_when_enabled():
    client, member = logged_in(organization__site="cn", organization__flagship_enabled=True)
    ProjectFactory(organization=member.organization)
    body = page(client, "deployment-create")
    assert "¥1.26" in body and "AWS Beijing" in body and "AWS N. Virginia" not in body
    assert "Flagship 100K" in body


def test_create_starts_provisioning_and_lands_on_the_detail_page():
    client, member = logged_in()
    project = ProjectFactory(organization=member.organization, name="fleet")
    response = client.post(url("deployment-create"), create_data(project))
    deployment = Deployment.objects.get(organization=member.organization, name="telemetry")
    assert response.status_code == 302
    assert response["Location"] == url("deployment-detail", deployment.id)
    assert deployment.status == S.PENDING and deployment.spec_id == "basic-1k" and deployment.project == project
    body = client.get(response["Location"]).content.decode()
    assert "Provisioning started" in body
    assert STATUS_POLL in body
    assert "Endpoints appear when the deployment is running" in body
    assert "created" in body and member.user.email in body  # the first lifecycle event
    assert AuditEvent.objects.filter(organization=member.organization, action="deployment.create").exists()


@pytest.mark.parametrize(("overrides", "field_error"), [
    ({"name": "Bad_Name"}, "lowercase letters, digits and hyphens"),
    ({"region": "mars-1"}, "Select a valid choice"),
    ({"region": "aws-cn-north-1"}, "Select a valid choice"),  # another site's region
    ({"region": "aws-ap-southeast-1"}, "The basic tier is not offered in AWS Singapore"),
    ({"spec": "nope"}, "nope is not a size you can choose"),
    ({"spec": "flagship-100k"}, "flagship-100k is not a size you can choose"),
    ({"spec": ""}, "Choose a size"),
])
def test_create_shows_refusals_on_the_form(overrides, field_error):
    client, member = logged_in()
    project = ProjectFactory(organization=member.organization)
    response = client.post(url("deployment-create"), create_data(project, **overrides))
    assert response.status_code == 400
    assert field_error in response.content.decode()
    assert not Deployment.objects.filter(organization=member.organization).exists()


def test_create_refuses_a_duplicate_name_in_the_project():
    client, member = logged_in()
    existing = DeploymentFactory(organization=member.organization, name="telemetry")
    response = client.post(url("deployment-create"), create_data(existing.project))
    assert response.status_code == 400
    assert "already has a deployment named telemetry" in response.content.decode()


# --- detail -----------------------------------------------------------------------------------------
def test_detail_of_a_running_deployment_shows_endpoints_snippets_and_events():
    client, member = logged_in()
    deployment = DeploymentFactory(organization=member.organization, endpoints=ENDPOINTS)
    DeploymentEvent.objects.create(organization=member.organization, deployment=deployment, from_status=S.PROVISIONING,
                                   to_status=S.RUNNING, spec=deployment.spec, reason="provisioned",
                                   actor_label="system")
    body = page(client, "deployment-detail", deployment.id)
    for address in ENDPOINTS.values():
        assert f'data-copy="{address}"' in body
    assert ('mosquitto_pub -h mq-abc.example.net -p 1883 -u &quot;$MQTT_USERNAME&quot; -P &quot;$MQTT_PASSWORD&quot; '
            '-t test/hello -m hello') in body
    assert "paho.mqtt.client" in body and "client.connect(&#x27;mq-abc.example.net&#x27;, 1883)" in body
    assert url("deployment-mqtt-users", deployment.id) in body  # where to create the user the snippets need
    assert "--cafile" not in body  # mqtts once the CA can be downloaded
    assert "provisioning</span> → <strong>running</strong>" in body and "provisioned" in body
    assert STATUS_POLL not in body
    for action in ("deployment-scale", "deployment-stop", "deployment-protection", "deployment-delete"):
        assert url(action, deployment.id) in body, action
    assert url("deployment-start", deployment.id) not in body
    assert "Basic 5K" in body  # the other size in the tier, offered for scaling


def test_detail_of_a_failed_deployment_shows_the_reason_and_retry():
    client, member = logged_in()
    deployment = DeploymentFactory(organization=member.organization, status=S.FAILED,
                                   failed_operation=S.PROVISIONING, status_reason="image pull failed")
    body = page(client, "deployment-detail", deployment.id)
    assert "image pull failed" in body and url("deployment-retry", deployment.id) in body
    assert "mosquitto_pub" not in body


def test_status_partial_polls_until_the_status_moves_then_reloads_the_page():
    client, member = logged_in()
    deployment = DeploymentFactory(organization=member.organization, status=S.PROVISIONING)
    status_url = url("deployment-detail", deployment.id) + "?part=status&shown=provisioning"
    response = client.get(status_url, headers={"HX-Request": "true"})
    body = response.content.decode()
    assert response.status_code == 200 and STATUS_POLL in body and "<html" not in body
    Deployment.objects.filter(pk=deployment.pk).update(status=S.RUNNING)
    response = client.get(status_url, headers={"HX-Request": "true"})
    assert response.status_code == 204 and response["HX-Refresh"] == "true"
    Deployment.objects.filter(pk=deployment.pk).update(status=S.DELETED)
    response = client.get(status_url, headers={"HX-Request": "true"})
    assert response["HX-Redirect"] == url("deployments")


# --- actions ----------------------------------------------------------------------------------------
def test_scale_stop_start_and_retry_go_through_the_services():
    client, member = logged_in()
    deployment = DeploymentFactory(organization=member.organization)
    response = client.post(url("deployment-scale", deployment.id), {"spec": "basic-5k"}, follow=True)
    assert "Scaling" in response.content.decode()
    deployment.refresh_from_db()
    assert deployment.status == S.SCALING and deployment.target_spec_id == "basic-5k"

    Deployment.objects.filter(pk=deployment.pk).update(status=S.RUNNING)
    client.post(url("deployment-stop", deployment.id))
    deployment.refresh_from_db()
    assert deployment.status == S.STOPPING

    Deployment.objects.filter(pk=deployment.pk).update(status=S.STOPPED)
    assert url("deployment-start", deployment.id) in page(client, "deployment-detail", deployment.id)
    client.post(url("deployment-start", deployment.id))
    deployment.refresh_from_db()
    assert deployment.status == S.STARTING

    Deployment.objects.filter(pk=deployment.pk).update(status=S.FAILED, failed_operation=S.STARTING)
    response = client.post(url("deployment-retry", deployment.id), follow=True)
    assert "Retrying" in response.content.decode()
    deployment.refresh_from_db()
    assert deployment.status == S.STARTING
    actions = set(AuditEvent.objects.filter(organization=member.organization).values_list("action", flat=True))
    assert {"deployment.scale", "deployment.stop", "deployment.start", "deployment.retry"} <= actions


def test_refusals_of_actions_become_messages():
    client, member = logged_in()
    deployment = DeploymentFactory(organization=member.organization, status=S.STOPPED)
    response = client.post(url("deployment-stop", deployment.id))
    assert response.status_code == 302 and response["Location"] == url("deployment-detail", deployment.id)
    body = client.get(response["Location"]).content.decode()
    assert "Cannot stop a deployment that is stopped" in body and "flash-error" in body
    body = client.post(url("deployment-scale", deployment.id), {"spec": "basic-5k"}, follow=True).content.decode()
    assert "Cannot scale a deployment that is stopped" in body
    body = client.post(url("deployment-scale", deployment.id), {"spec": "pro-5k"}, follow=True).content.decode()
    assert "not one of the available choices" in body
    body = client.post(url("deployment-retry", deployment.id), follow=True).content.decode()
    assert "Cannot retry a deployment that is stopped" in body
    deployment.refresh_from_db()
    assert deployment.status == S.STOPPED


def test_deletion_protection_toggle_and_delete_with_confirmation():
    client, member = logged_in()
    deployment = DeploymentFactory(organization=member.organization, name="keep-me")
    client.post(url("deployment-protection", deployment.id), {"deletion_protection": "on"})
    deployment.refresh_from_db()
    assert deployment.deletion_protection

    body = page(client, "deployment-delete", deployment.id)
    assert "Deletion protection is on" in body and "keep-me" in body
    response = client.post(url("deployment-delete", deployment.id), {"confirm_name": "keep-me"})
    assert response.status_code == 400
    assert "Deletion protection is on for this deployment" in response.content.decode()  # the service's 409

    client.post(url("deployment-protection", deployment.id), {})
    deployment.refresh_from_db()
    assert not deployment.deletion_protection
    response = client.post(url("deployment-delete", deployment.id), {"confirm_name": "keep-m"})
    assert response.status_code == 400 and "Type keep-me exactly" in response.content.decode()
    deployment.refresh_from_db()
    assert deployment.status == S.RUNNING

    response = client.post(url("deployment-delete", deployment.id), {"confirm_name": "keep-me"})
    assert response.status_code == 302 and response["Location"] == url("deployments")
    deployment.refresh_from_db()
    assert deployment.status == S.DELETING
    body = client.get(response["Location"]).content.decode()
    assert "Deleting keep-me" in body and LIST_POLL in body


# --- permissions and tenancy ------------------------------------------------------------------------
def test_viewer_sees_the_pages_but_no_actions_and_gets_403_on_changes():
    client, member = logged_in(Role.VIEWER)
    deployment = DeploymentFactory(organization=member.organization, endpoints=ENDPOINTS)
    listing = page(client, "deployments")
    assert deployment.name in listing and "Create deployment" not in listing
    body = page(client, "deployment-detail", deployment.id)
    assert deployment.name in body and "mq-abc.example.net:1883" in body
    for action in ("deployment-scale", "deployment-stop", "deployment-start", "deployment-retry",
                   "deployment-protection", "deployment-delete"):
        assert url(action, deployment.id) not in body, action
        assert client.post(url(action, deployment.id), {"confirm_name": deployment.name}).status_code == 403, action
    assert client.get(url("deployment-create")).status_code == 403
    assert client.get(url("deployment-delete", deployment.id)).status_code == 403
    deployment.refresh_from_db()
    assert deployment.status == S.RUNNING


def test_member_limited_to_a_project_sees_only_its_deployments():
    org = OrganizationFactory()
    mine, theirs = ProjectFactory(organization=org, name="mine"), ProjectFactory(organization=org, name="theirs")
    visible = DeploymentFactory(organization=org, project=mine, name="visible-one")
    hidden = DeploymentFactory(organization=org, project=theirs, name="hidden-one")
    client, _ = logged_in(Role.DEVELOPER, organization=org, projects=[mine])
    listing = page(client, "deployments")
    assert "visible-one" in listing and "hidden-one" not in listing
    assert client.get(url("deployment-detail", visible.id)).status_code == 200
    assert client.get(url("deployment-detail", hidden.id)).status_code == 404
    assert client.post(url("deployment-stop", hidden.id)).status_code == 404
    form = page(client, "deployment-create")
    assert f'value="{mine.id}"' in form and f'value="{theirs.id}"' not in form
    response = client.post(url("deployment-create"), create_data(theirs))
    assert response.status_code == 400
    assert not Deployment.objects.filter(project=theirs, name="telemetry").exists()


def test_another_organizations_deployment_is_404():
    client, _ = logged_in()
    stranger = DeploymentFactory()
    for name in ("deployment-detail", "deployment-delete"):
        assert client.get(url(name, stranger.id)).status_code == 404, name
    for name in ("deployment-scale", "deployment-stop", "deployment-start", "deployment-retry",
                 "deployment-protection", "deployment-delete"):
        assert client.post(url(name, stranger.id), {"spec": "basic-5k", "confirm_name": stranger.name,
                                                    "deletion_protection": "on"}).status_code == 404, name
    stranger.refresh_from_db()
    assert stranger.status == S.RUNNING and not stranger.deletion_protection
