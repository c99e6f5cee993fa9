"""The maintenance window API: validation as problem+json field errors, inheritance from the project,
exclusions, defer once, roles and project limits, audit. (A stranger's ids: tests/test_tenancy_isolation.py.)"""

from __future__ import annotations

import pytest
import time_machine

from deployments.tests.factories import DeploymentFactory
from projects.models import AuditEvent
from projects.roles import Role
from projects.tests.factories import ProjectFactory, make_api_key

pytestmark = pytest.mark.django_db

BERLIN_SUNDAY = {"weekday": "sunday", "start_time": "02:30", "length_minutes": 120, "time_zone": "Europe/Berlin"}
# A Friday before the last Sunday of March 2027 (28 March: Berlin's clocks jump from 02:00 to 03:00).
BEFORE_SPRING = "2027-03-19T12:00:00Z"


# `org` and `deployment` come from deployments/tests/conftest.py.
@pytest.fixture
def api_as(org, make_client):
    def _as(role: str = Role.OWNER, projects=()):
        _, secret = make_api_key(org, role=role, projects=projects)
        return make_client(secret)
    return _as


def window_url(owner) -> str:
    kind = "deployments" if owner.pk.startswith("dep_") else "projects"
    return f"/api/v1/{kind}/{owner.pk}/maintenance-window"


def exclusions_url(owner) -> str:
    return window_url(owner).replace("maintenance-window", "maintenance-exclusions")


def assert_field_errors(response, *fields: str) -> None:
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert set(response.json()["errors"]) == set(fields), response.json()


@time_machine.travel(BEFORE_SPRING, tick=False)
def test_a_deployment_window_with_its_next_occurrences_across_the_spring_change(api_as, deployment):
    api = api_as()
    response = api.put(window_url(deployment), BERLIN_SUNDAY, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["source"] == "deployment" and body["inherited"] is False
    assert [o["start"] for o in body["next_occurrences"]] == [
        "2027-03-21T01:30:00.000000Z", "2027-03-28T01:30:00.000000Z", "2027-04-04T00:30:00.000000Z"]
    # 02:30 does not exist on 28 March in Berlin: it opens at 03:30 CEST, then 02:30 CEST again.
    assert [o["local_start"] for o in body["next_occurrences"]] == [
        "2027-03-21T02:30:00+01:00", "2027-03-28T03:30:00+02:00", "2027-04-04T02:30:00+02:00"]
    assert api.get(window_url(deployment)).json() == body
    event = AuditEvent.objects.get(action="deployment.maintenance_window.update")
    assert event.changes["after"]["start_time"] == "02:30"


def test_bad_windows_are_400_with_every_field_named(api_as, deployment):
    api = api_as()
    bad = {"weekday": "someday", "start_time": "3:00", "length_minutes": 0, "time_zone": "Europe/Atlantis"}
    assert_field_errors(api.put(window_url(deployment), bad, format="json"),
                        "weekday", "start_time", "length_minutes", "time_zone")
    for field, value in [("length_minutes", 24 * 60 + 1), ("start_time", "24:00"), ("start_time", "03:00:00"),
                         ("length_minutes", "60"), ("time_zone", "")]:
        assert_field_errors(api.put(window_url(deployment), {**BERLIN_SUNDAY, field: value}, format="json"), field)
    assert_field_errors(api.put(window_url(deployment), {**BERLIN_SUNDAY, "colour": "red"}, format="json"),
                        "colour")
    assert api.put(window_url(deployment), {**BERLIN_SUNDAY, "length_minutes": 1440}, format="json").status_code \
        == 200
    assert not AuditEvent.objects.filter(action__contains="maintenance").exclude(
        changes__after__length_minutes=1440).exists()


@time_machine.travel(BEFORE_SPRING, tick=False)
def test_a_deployment_inherits_its_projects_window_until_it_has_its_own(api_as, deployment):
    api = api_as()
    assert api.get(window_url(deployment)).json()["source"] is None
    assert api.put(window_url(deployment.project), {**BERLIN_SUNDAY, "time_zone": "UTC"},
                   format="json").status_code == 200
    inherited = api.get(window_url(deployment)).json()
    assert (inherited["inherited"], inherited["source"], inherited["time_zone"]) == (True, "project", "UTC")
    assert api.put(window_url(deployment), BERLIN_SUNDAY, format="json").json()["inherited"] is False
    assert api.delete(window_url(deployment)).status_code == 204
    assert api.get(window_url(deployment)).json()["inherited"] is True
    assert api.get(window_url(deployment.project)).json()["source"] == "project"


@time_machine.travel(BEFORE_SPRING, tick=False)
def test_exclusions_of_the_project_and_the_deployment_skip_occurrences(api_as, deployment):
    api = api_as()
    api.put(window_url(deployment.project), BERLIN_SUNDAY, format="json")
    freeze = api.post(exclusions_url(deployment.project), {"start_date": "2027-03-20", "end_date": "2027-03-21",
                                                           "reason": "spring sale"}, format="json")
    assert freeze.status_code == 201, freeze.content
    own = api.post(exclusions_url(deployment), {"start_date": "2027-04-04", "end_date": "2027-04-04"},
                   format="json")
    assert own.status_code == 201
    body = api.get(window_url(deployment)).json()
    assert [o["start"][:10] for o in body["next_occurrences"]] == ["2027-03-28", "2027-04-11", "2027-04-18"]
    assert [(e["reason"], e["scope"]) for e in body["exclusions"]] == [("spring sale", "project"), ("", "deployment")]
    assert [e["id"] for e in api.get(exclusions_url(deployment)).json()["results"]] == [own.json()["id"]]
    assert api.delete(f"{exclusions_url(deployment)}/{own.json()['id']}").status_code == 204
    # The project's exclusion is not the deployment's to delete.
    assert api.delete(f"{exclusions_url(deployment)}/{freeze.json()['id']}").status_code == 404
    assert set(AuditEvent.objects.filter(action__contains="exclusion").values_list("action", flat=True)) == {
        "project.maintenance_exclusion.create", "deployment.maintenance_exclusion.create",
        "deployment.maintenance_exclusion.delete"}


def test_bad_exclusions_are_400(api_as, deployment):
    api = api_as()
    url = exclusions_url(deployment)
    assert api.post(url, {"start_date": "2027-11-20", "end_date": "2027-12-31"}, format="json").status_code == 201
    assert_field_errors(api.post(url, {"start_date": "2027-12-31", "end_date": "2028-01-10"}, format="json"),
                        "start_date")  # overlaps the first
    assert_field_errors(api.post(url, {"start_date": "2028-02-10", "end_date": "2028-02-01"}, format="json"),
                        "end_date")
    assert_field_errors(api.post(url, {"start_date": "2028-01-01", "end_date": "2028-03-01"}, format="json"),
                        "end_date")  # 61 days
    assert_field_errors(api.post(url, {"start_date": "tomorrow", "end_date": "2028-03-01"}, format="json"),
                        "start_date")
    assert api.post(url, {"start_date": "2028-01-01", "end_date": "2028-02-29"}, format="json").status_code == 201


@time_machine.travel(BEFORE_SPRING, tick=False)
def test_defer_once_skips_the_next_occurrence_and_only_once(api_as, deployment):
    api = api_as()
    defer = f"{window_url(deployment)}/defer"
    assert api.post(defer).status_code == 409  # no window anywhere
    api.put(window_url(deployment.project), BERLIN_SUNDAY, format="json")
    body = api.post(defer).json()
    assert body["deferred_occurrence_start"] == "2027-03-21T01:30:00.000000Z"
    assert [o["start"][:10] for o in body["next_occurrences"]] == ["2027-03-28", "2027-04-04", "2027-04-11"]
    assert api.post(defer).json() == body  # a retry skips nothing more
    assert AuditEvent.objects.filter(action="deployment.maintenance_window.defer").count() == 1
    # A new window of its own: the deferral belonged to the old one.
    assert api.put(window_url(deployment), BERLIN_SUNDAY, format="json").json()["deferred_occurrence_start"] is None


def test_roles_and_project_limits(api_as, org, deployment):
    other = DeploymentFactory(organization=org, project=ProjectFactory(organization=org))
    viewer, developer = api_as(Role.VIEWER), api_as(Role.DEVELOPER)
    limited = api_as(Role.DEVELOPER, projects=[deployment.project])
    assert viewer.get(window_url(deployment)).status_code == 200
    assert viewer.put(window_url(deployment), BERLIN_SUNDAY, format="json").status_code == 403
    assert viewer.post(exclusions_url(deployment.project), {"start_date": "2027-01-01", "end_date": "2027-01-02"},
                       format="json").status_code == 403
    assert viewer.post(f"{window_url(deployment)}/defer").status_code == 403
    assert api_as(Role.BILLING).put(window_url(deployment.project), BERLIN_SUNDAY, format="json").status_code == 403
    assert developer.put(window_url(deployment.project), BERLIN_SUNDAY, format="json").status_code == 200
    assert limited.put(window_url(deployment), BERLIN_SUNDAY, format="json").status_code == 200
    for url in (window_url(other), window_url(other.project), exclusions_url(other.project)):
        assert limited.get(url).status_code == 404
    assert limited.put(window_url(other), BERLIN_SUNDAY, format="json").status_code == 404


def test_a_project_with_a_window_and_exclusions_can_still_be_deleted(api_as, org):
    api = api_as()
    project = ProjectFactory(organization=org)
    api.put(window_url(project), BERLIN_SUNDAY, format="json")
    api.post(exclusions_url(project), {"start_date": "2027-01-01", "end_date": "2027-01-02"}, format="json")
    assert api.delete(f"/api/v1/projects/{project.pk}").status_code == 204
    assert api.get(window_url(project)).status_code == 404
