"""Invitations end to end: the API enqueues on commit, a real Celery worker (Redis broker) sends the mail
over real SMTP to an aiosmtpd sink, and the link in that mail is what the invitee accepts with."""

from __future__ import annotations

import email
import email.policy
import re
import socket
import threading
import time
from datetime import timedelta

import pytest
import time_machine
from aiosmtpd.controller import Controller
from django.db import connections
from django.test import override_settings

from controlplane.celery import app as celery_app
from projects.models import Invitation
from projects.roles import Role
from projects.tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory, make_api_key

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


class Sink:
    """aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        self.arrived = threading.Condition()

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's hook name)
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.arrived:
            self.messages.append((list(envelope.rcpt_tos), parsed))
            self.arrived.notify_all()
        return "250 Message accepted for delivery"

    def wait_for(self, recipient: str, timeout: float = 30.0) -> email.message.EmailMessage:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                for rcpt_tos, message in self.messages:
                    if recipient in rcpt_tos:
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no mail to {recipient} within {timeout}s; got {self.messages!r}")
                self.arrived.wait(remaining)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_sink():
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield sink, controller.port
    finally:
        controller.stop()


@pytest.fixture
def celery_worker_running():
    from celery.contrib.testing.worker import start_worker

    assert not celery_app.conf.task_always_eager, "the flow must go through the broker"
    celery_app.control.purge()  # nothing left over from an earlier run may reach this worker
    with start_worker(celery_app, perform_ping_check=False, pool="solo", shutdown_timeout=30):
        yield
    connections.close_all()


@pytest.fixture(autouse=True)
def _restore_catalog():
    # A transactional test flushes every table at the end, the catalog included; later tests need it.
    yield
    from deployments.services import catalog_sync

    catalog_sync()


def accept_token(message: email.message.EmailMessage) -> str:
    text = message.get_body(preferencelist=("plain",)).get_content()
    match = re.search(r"https?://\S+/console/invitations/([A-Za-z0-9_-]+)", text)
    assert match, text
    return match.group(1)


def test_invitation_over_real_smtp_and_a_real_worker(smtp_sink, celery_worker_running, make_client, anon):
    sink, port = smtp_sink
    org = OrganizationFactory(name="Acme Robotics")
    MembershipFactory(organization=org, role=Role.OWNER)
    fleet = ProjectFactory(organization=org, name="fleet")
    ProjectFactory(organization=org, name="other")
    _, secret = make_api_key(org, role=Role.ADMIN)
    admin = make_client(secret)

    smtp = {"EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend", "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": port, "EMAIL_USE_TLS": False, "EMAIL_HOST_USER": "", "EMAIL_HOST_PASSWORD": ""}
    with override_settings(**smtp):
        created = admin.post("/api/v1/invitations",
                             {"email": "grace@example.com", "role": "developer", "projects": [fleet.id]},
                             format="json")
        assert created.status_code == 201, created.content
        late = admin.post("/api/v1/invitations", {"email": "late@example.com", "role": "viewer"}, format="json")
        assert late.status_code == 201, late.content
        message = sink.wait_for("grace@example.com")
        late_message = sink.wait_for("late@example.com")

    assert "Acme Robotics" in message["Subject"]
    assert message.get_body(preferencelist=("html",)) is not None
    token = accept_token(message)
    deadline = time.monotonic() + 10
    while Invitation.objects.get(pk=created.json()["id"]).email_sent_at is None:  # marked after the send
        assert time.monotonic() < deadline
        time.sleep(0.05)

    accepted = anon.post("/api/v1/invitations/accept", {"token": token, "password": "grace-hopper-cobol-1959"},
                         format="json")
    assert accepted.status_code == 200, accepted.content
    member_id = accepted.json()["member"]["id"]

    members = admin.get("/api/v1/members").json()["results"]
    grace = next(m for m in members if m["email"] == "grace@example.com")
    assert grace["id"] == member_id
    assert grace["role"] == "developer"
    assert grace["projects"] == [fleet.id]
    invitations = {i["email"]: i["status"] for i in admin.get("/api/v1/invitations").json()["results"]}
    assert invitations["grace@example.com"] == "accepted"

    again = anon.post("/api/v1/invitations/accept", {"token": token, "password": "grace-hopper-cobol-1959"},
                      format="json")
    assert again.status_code == 409
    assert again["Content-Type"] == "application/problem+json"

    expires_at = Invitation.objects.get(pk=late.json()["id"]).expires_at
    with time_machine.travel(expires_at + timedelta(minutes=1)):
        expired = anon.post("/api/v1/invitations/accept",
                            {"token": accept_token(late_message), "password": "a-late-passphrase-42"}, format="json")
    assert expired.status_code == 409
    assert "late@example.com" not in {m["email"] for m in admin.get("/api/v1/members").json()["results"]}
