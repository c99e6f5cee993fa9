"""Issue 18, item 2, the platform's side: maintenance the platform starts itself goes into the deployment's
window (or the platform's), is announced a week ahead by email and on the alert channels, starts only inside
its occurrence, moves when the customer defers or excludes that occurrence, and says how it ended."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from alerts.models import Notification
from alerts.tests.factories import AlertChannelFactory
from deployments.maintenance import planned
from deployments.models import MaintenanceExclusion, MaintenanceWindow, PlannedMaintenance, ServerCertificate
from deployments.models import PlannedMaintenanceStatus as PM
from deployments.tests.factories import DeploymentFactory
from deployments.tls.services import issue_for_deployment
from projects.models import AuditEvent, User
from projects.roles import Role
from projects.tests.factories import MembershipFactory
from tests.support import eager_tasks

pytestmark = pytest.mark.django_db

UTC = dt.UTC
# A Wednesday; the deployment's window is Tuesdays 03:00-05:00 in Berlin (01:00-03:00 UTC in winter).
NOW = dt.datetime(2027, 1, 6, 12, 0, tzinfo=UTC)
FIRST = dt.datetime(2027, 1, 19, 2, 0, tzinfo=UTC)  # the first Tuesday at least 7 days ahead (12 Jan is < 7 days)


@pytest.fixture
def deployment():
    deployment = DeploymentFactory(name="fleet-eu")
    MaintenanceWindow.objects.create(organization=deployment.organization, deployment=deployment, weekday=1,
                                     start_time=dt.time(3, 0), length_minutes=120, time_zone="Europe/Berlin")
    MembershipFactory(organization=deployment.organization, role=Role.OWNER, user__email="owner@example.com")
    MembershipFactory(organization=deployment.organization, role=Role.DEVELOPER, user__email="dev@example.com")
    issue_for_deployment(deployment=deployment, host="fleet-eu.example", now=NOW - dt.timedelta(days=10))
    return deployment


def _operator(deployment):
    from projects.tenancy import Principal
    from projects.tests.factories import operator_user

    user = operator_user() if not User.objects.filter(email="ops@example.com").exists() else \
        User.objects.get(email="ops@example.com")
    return Principal.for_staff(user, deployment.organization)


def _plan(deployment, **kwargs) -> PlannedMaintenance:
    return planned.planned_maintenance_plan(
        deployment=deployment, kind="certificate_rotation", summary="New TLS certificate (the brokers restart one "
        "at a time)", principal=_operator(deployment), now=NOW, **kwargs)


@pytest.fixture(autouse=True)
def _commits(django_capture_on_commit_callbacks):
    global _on_commit
    _on_commit = django_capture_on_commit_callbacks


def _pass(at: dt.datetime) -> dict[str, int]:
    """One beat pass at ``at``, its on-commit work (mail, deliveries) run as a worker would."""
    with time_machine.travel(at, tick=False), eager_tasks(propagate=False), _on_commit(execute=True):
        return planned.planned_maintenance_pass(now=at)


def test_planned_into_the_first_occurrence_a_week_ahead_and_announced_a_week_before_it(deployment):
    work = _plan(deployment)
    assert (work.window_start, work.window_end) == (FIRST, FIRST + dt.timedelta(hours=2))
    assert work.announce_at == FIRST - planned.NOTICE and work.status == PM.SCHEDULED
    assert _plan(deployment).pk == work.pk  # planning again (a retry) changes nothing

    assert _pass(work.announce_at - dt.timedelta(minutes=1)) == {}
    AlertChannelFactory(organization=deployment.organization)
    assert _pass(work.announce_at) == {"announced": 1}
    work.refresh_from_db()
    assert work.status == PM.ANNOUNCED and work.announced_at == work.announce_at
    notice = Notification.objects.get(kind="notice")
    assert notice.payload["type"] == "maintenance.announced"
    assert notice.payload["maintenance"]["window_start"] == FIRST.isoformat()
    assert notice.payload["dedup_key"] == f"maintenance:{work.pk}"
    # The owners and admins by email (not the developer), besides the channel (an email channel here).
    assert sorted(m.to[0] for m in mail.outbox) == ["ops@example.com", "owner@example.com"]
    assert all("Planned maintenance of fleet-eu" in m.subject for m in mail.outbox)
    assert _pass(work.announce_at + dt.timedelta(minutes=5)) == {}  # told once


def test_it_runs_inside_its_occurrence_only_and_says_so(deployment, django_capture_on_commit_callbacks):
    work = _plan(deployment)
    _pass(work.announce_at)
    before = ServerCertificate.objects.get(deployment=deployment).fingerprint_sha256
    assert _pass(FIRST - dt.timedelta(minutes=1)) == {}
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert _pass(FIRST + dt.timedelta(minutes=3)) == {"run": 1}
    work.refresh_from_db()
    assert work.status == PM.DONE and work.started_at == FIRST + dt.timedelta(minutes=3)
    assert [step["status"] for step in work.history] == ["scheduled", "announced", "running", "done"]
    assert ServerCertificate.objects.get(deployment=deployment).fingerprint_sha256 != before
    assert len(callbacks) >= 1  # the repair that applies the new certificate, and the notices
    assert Notification.objects.filter(payload__type="maintenance.done").count() == 0  # no channel: email only
    assert any("Maintenance of fleet-eu done" in m.subject for m in mail.outbox)


def test_a_deferred_occurrence_moves_the_work_to_the_next_one_and_tells_again(deployment):
    from deployments.maintenance.services import maintenance_defer
    from projects.tenancy import Principal

    work = _plan(deployment)
    _pass(work.announce_at)
    owner = deployment.organization.memberships.get(role=Role.OWNER)
    with time_machine.travel(FIRST - dt.timedelta(days=2), tick=False):
        maintenance_defer(principal=Principal.for_membership(owner), deployment=deployment)
    assert _pass(FIRST + dt.timedelta(minutes=1)) == {"moved": 1}
    work.refresh_from_db()
    assert work.status == PM.SCHEDULED and work.window_start == FIRST + dt.timedelta(weeks=1)
    assert "deferred" in work.history[-1]["note"]
    assert _pass(FIRST + dt.timedelta(minutes=6)) == {"announced": 1}


def test_an_exclusion_added_after_the_announcement_is_honoured(deployment):
    work = _plan(deployment)
    _pass(work.announce_at)
    MaintenanceExclusion.objects.create(organization=deployment.organization, deployment=deployment,
                                        start_date=dt.date(2027, 1, 18), end_date=dt.date(2027, 1, 31),
                                        reason="retail freeze")
    assert _pass(FIRST) == {"moved": 1}
    work.refresh_from_db()
    assert work.window_start == dt.datetime(2027, 2, 2, 2, 0, tzinfo=UTC)


def test_a_deployment_being_changed_waits_within_the_window(deployment):
    work = _plan(deployment)
    _pass(work.announce_at)
    deployment.status = "scaling"
    deployment.save(update_fields=["status"])
    assert _pass(FIRST + dt.timedelta(minutes=1)) == {}
    deployment.status = "running"
    deployment.save(update_fields=["status"])
    assert _pass(FIRST + dt.timedelta(minutes=6)) == {"run": 1}


def test_without_a_window_the_platforms_is_used():
    deployment = DeploymentFactory()
    work = planned.planned_maintenance_plan(deployment=deployment, kind="certificate_rotation", summary="rotate",
                                            now=NOW)
    assert work.requested_by == "platform"
    assert work.window_start == dt.datetime(2027, 1, 17, 2, 0, tzinfo=UTC)  # a Sunday 02:00 UTC, >= 7 days
    assert work.window_end - work.window_start == dt.timedelta(hours=4)


def test_a_deadline_sooner_than_the_notice_takes_an_earlier_occurrence(deployment):
    work = _plan(deployment, must_start_by=dt.datetime(2027, 1, 14, tzinfo=UTC))
    assert work.window_start == dt.datetime(2027, 1, 12, 2, 0, tzinfo=UTC) and work.announce_at == NOW


def test_a_failure_is_recorded_and_told(deployment, monkeypatch):
    def broken(deployment, details):
        raise RuntimeError("the region's CA is unavailable")

    monkeypatch.setitem(planned.EXECUTORS, "certificate_rotation", broken)
    work = _plan(deployment)
    _pass(work.announce_at)
    assert _pass(FIRST) == {"run": 1}
    work.refresh_from_db()
    assert work.status == PM.FAILED and "CA is unavailable" in work.error
    assert any("Maintenance of fleet-eu failed" in m.subject for m in mail.outbox)


def test_cancelled_before_it_starts_and_never_runs(deployment):
    work = _plan(deployment)
    _pass(work.announce_at)
    with eager_tasks(propagate=False), _on_commit(execute=True):
        assert planned.planned_maintenance_cancel(planned=work, principal=_operator(deployment), now=NOW)
    assert _pass(FIRST) == {}
    work.refresh_from_db()
    assert work.status == PM.CANCELLED
    assert not planned.planned_maintenance_cancel(planned=work, principal=_operator(deployment))
    assert list(AuditEvent.objects.filter(action__startswith="deployment.planned_maintenance").values_list(
        "action", flat=True).order_by("created_at")) == ["deployment.planned_maintenance.plan",
                                                         "deployment.planned_maintenance.cancel"]
    assert any("cancelled" in m.subject for m in mail.outbox)


def test_the_beat_job_runs_the_pass(settings):
    from celery import current_app

    import deployments.tasks  # noqa: F401 - registers the task

    entry = settings.CELERY_BEAT_SCHEDULE["planned-maintenance-pass"]
    assert entry["task"] == "deployments.tasks.planned_maintenance_pass" and entry["task"] in current_app.tasks
    assert current_app.tasks[entry["task"]].apply().get() == {}
    assert timezone.now()  # nothing due on an empty platform


def test_the_api_lists_a_deployments_planned_maintenance(deployment, make_client):
    from projects.tests.factories import make_api_key

    work = _plan(deployment)
    _, secret = make_api_key(deployment.organization, role=Role.VIEWER)
    response = make_client(secret).get(f"/api/v1/deployments/{deployment.id}/planned-maintenance")
    assert response.status_code == 200, response.content
    [row] = response.json()["results"]
    assert row["id"] == work.pk and row["kind"] == "certificate_rotation" and row["status"] == "scheduled"
    assert row["window_start"].startswith("2027-01-19T02:00:00") and row["history"][0]["status"] == "scheduled"
    other = DeploymentFactory()
    _, stranger = make_api_key(other.organization)
    assert make_client(stranger).get(f"/api/v1/deployments/{deployment.id}/planned-maintenance").status_code == 404


def test_the_console_shows_the_announcement_as_a_banner_and_on_the_maintenance_page(deployment, session_client):
    owner = deployment.organization.memberships.get(role=Role.OWNER)
    work = _plan(deployment)
    with time_machine.travel(NOW, tick=False):
        page = session_client(owner.user).get("/console/deployments")
        assert page.status_code == 200 and f"planned-maintenance-{work.pk}" not in page.content.decode()
    _pass(work.announce_at)
    with time_machine.travel(work.announce_at + dt.timedelta(hours=1), tick=False):
        client = session_client(owner.user)  # logged in then: a session does not last the week
        for page in ("/console/deployments", f"/console/deployments/{deployment.id}"):
            response = client.get(page)
            assert response.status_code == 200, (page, response.status_code, response.get("Location"))
            body = response.content.decode()
            assert f'id="planned-maintenance-{work.pk}"' in body and "Planned maintenance of fleet-eu" in body
        body = client.get(f"/console/deployments/{deployment.id}/maintenance").content.decode()
        assert f'id="planned-{work.pk}"' in body and "Announced" in body


def test_an_operator_plans_a_rotation_from_the_ops_site_and_can_cancel_it(deployment, client):
    from projects.tests.factories import operator_user

    client.force_login(operator_user())
    response = client.post("/ops/deployments/deployment/", {"action": "plan_certificate_rotation",
                                                             "_selected_action": [deployment.pk]})
    assert response.status_code == 302
    work = PlannedMaintenance.objects.get(deployment=deployment)
    assert work.requested_by.startswith("ops@example.com") or "ops@example.com" in work.requested_by
    assert client.get("/ops/deployments/plannedmaintenance/").status_code == 200
    client.post("/ops/deployments/plannedmaintenance/", {"action": "cancel", "_selected_action": [work.pk]})
    work.refresh_from_db()
    assert work.status == PM.CANCELLED


def test_a_deprecated_version_gets_an_upgrade_planned_before_its_end_of_support_and_started_in_the_window(
        deployment):
    from deployments.models import Operation
    from deployments.upgrades.models import DeploymentUpgrade

    Deployment = type(deployment)
    Deployment.objects.filter(pk=deployment.pk).update(broker_version="5.7.2")  # deprecated, ends 2027-06-30
    stopped = DeploymentFactory(organization=deployment.organization, status="stopped", broker_version="5.7.2")
    current = DeploymentFactory(organization=deployment.organization)
    assert planned.forced_upgrades_plan(now=NOW) == 1
    assert planned.forced_upgrades_plan(now=NOW) == 0  # planned once
    work = PlannedMaintenance.objects.get(kind="broker_upgrade")
    assert work.deployment_id == deployment.pk and work.details == {"version": "5.9.1", "from_version": "5.7.2"}
    assert work.window_start == FIRST and work.must_start_by == dt.datetime(2027, 6, 30, tzinfo=UTC)
    assert "Upgrade from EMQX 5.7.2 (end of support 2027-06-30) to 5.9.1" == work.summary
    assert not PlannedMaintenance.objects.filter(deployment__in=[stopped, current]).exists()

    _pass(work.announce_at)
    with time_machine.travel(FIRST, tick=False), _on_commit(execute=False):
        assert planned.planned_maintenance_pass(now=FIRST) == {"run": 1}
    upgrade = DeploymentUpgrade.objects.get(deployment=deployment)
    assert (upgrade.from_version, upgrade.to_version) == ("5.7.2", "5.9.1")
    assert Operation.objects.get(pk=upgrade.operation_id).type == "upgrade"
    work.refresh_from_db()
    assert work.status == PM.DONE


def test_the_upgrade_preview_is_in_the_preview(deployment):
    from deployments.preview import change_preview
    from projects.tenancy import Principal

    result = change_preview(principal=Principal.for_system(deployment.organization), deployment=deployment,
                            change="upgrade", version="5.9.1")
    assert result.disconnect.kind == "rolling" and result.price["hourly_before"] == result.price["hourly_after"]
