"""The fleet overview: staff only, composed from the apps' selectors, lists newest first, an audited retry."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from alerts.tests.factories import NotificationFactory
from billing.tests.factories import InvoiceFactory
from controlplane.models import TaskFailure
from controlplane.task_records import task_heartbeat_record
from deployments.tests.factories import DeploymentFactory
from projects.models import AuditEvent
from projects.tests.factories import MembershipFactory, OrganizationFactory, operator_user

pytestmark = pytest.mark.django_db

URL = "/ops/overview/"


@pytest.fixture
def ops() -> Client:
    client = Client()
    client.force_login(operator_user("ops@example.com", "an-operator-passphrase", superuser=False))
    return client


def test_only_staff_see_the_overview():
    assert Client().get(URL).status_code == 302
    customer = Client()
    customer.force_login(MembershipFactory().user)
    response = customer.get(URL)
    assert response.status_code == 302 and "/ops/login/" in response["Location"]
    assert customer.post(f"/ops/overview/task-failures/{1}/retry").status_code == 302


def test_the_overview_shows_every_part(ops):
    now = timezone.now()
    DeploymentFactory(status="running")
    DeploymentFactory(status="failed", status_reason="quota exceeded")
    TaskFailure.objects.create(task_name="deployments.tasks.deployment_repair", args=["dep_x"],
                               exception_type="k8s.services.KubernetesError", message="503 from the API",
                               failed_at=now - timedelta(minutes=3))
    TaskFailure.objects.create(task_name="old.task", exception_type="E", failed_at=now - timedelta(hours=2))
    task_heartbeat_record(task_name="alerts.tasks.alerts_evaluate", now=now - timedelta(seconds=400))
    for status in ("delivered", "failed"):
        NotificationFactory(status=status)
    InvoiceFactory(status="open")
    body = " ".join(ops.get(URL).content.decode().split())
    assert '<tr data-status="running"><th scope="row"><a href="/ops/deployments/deployment/?status__exact=running">' \
           'running</a></th><td>1</td></tr>' in body
    assert "quota exceeded" in body
    assert "deployments.tasks.deployment_repair" in body and "503 from the API" in body and "dep_x" in body
    assert "old.task" not in body
    # 400 s when the page renders at once; a second or two more on a busy machine.
    assert re.search(r"<strong>late:</strong> 40\d s since the last evaluation", body)
    assert "<strong>high:</strong> 50.0% (1 failed of 2)" in body
    assert '<tr data-status="open"><th scope="row"><a href="/ops/billing/invoice/?status__exact=open">open</a>' \
           '</th><td>1</td></tr>' in body
    assert 'href="/ops/overview/"' in ops.get("/ops/").content.decode()


def test_retry_queues_the_task_again_and_is_audited(ops, django_capture_on_commit_callbacks):
    failure = TaskFailure.objects.create(task_name="deployments.tasks.deployment_repair", args=["dep_x"],
                                         exception_type="E")
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = ops.post(f"/ops/overview/task-failures/{failure.pk}/retry")
    assert response.status_code == 302 and response["Location"] == URL
    assert len(queued) == 1
    failure.refresh_from_db()
    assert failure.retried_by == "ops@example.com"
    event = AuditEvent.objects.get(action="ops.task_failure.retry")
    assert event.actor_type == "staff" and event.changes == {"task": "deployments.tasks.deployment_repair",
                                                             "args": ["dep_x"], "kwargs": {}}
    assert event.target_id == str(failure.pk)


def test_ops_lists_are_newest_first():
    ops = Client()
    ops.force_login(operator_user("root@example.com", "an-operator-passphrase"))
    organization = OrganizationFactory()
    now = timezone.now()
    for minutes in (30, 5, 60, 15):
        AuditEvent.objects.create(organization=organization, actor_type="system", action=f"test.{minutes}",
                                  created_at=now - timedelta(minutes=minutes))
    response = ops.get("/ops/projects/auditevent/")
    assert response.status_code == 200, response
    body = response.content.decode()
    positions = [body.index(f"test.{minutes}") for minutes in (5, 15, 30, 60)]
    assert positions == sorted(positions)


def test_lists_without_a_time_field_keep_their_own_order():
    from billing.models import InvoiceLine
    from controlplane.models import TaskFailure as Failure
    from deployments.models import Region
    from projects.ops_admin import newest_first

    assert newest_first(Failure) == ("-failed_at", "-pk")
    assert newest_first(InvoiceLine) == ["position"]
    assert newest_first(Region) == ("-pk",)
