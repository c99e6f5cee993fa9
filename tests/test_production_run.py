"""The production wiring, end to end and under faults: the stack `make run-production` starts
(controlplane/local_run.py), on the production profile: gunicorn through `container-entrypoint web`, one Celery
worker per queue, two RedBeat beat replicas, PostgreSQL (a database of its own), a Redis of its own with an
append-only file, the simulated cluster and clouds. The tests talk to it only over HTTP, SMTP and Redis on loopback,
as a customer, a mail server, a webhook receiver and an operator would. One stack serves every test here (it takes
about half a minute to start), and the tests run in file order: the alert configured first is evaluated by beat
while the fault tests run.

The stack's Redis transport hands a dead worker's unacknowledged task back after 6 s (production: 75 minutes, above
the longest countdown; see settings) and sweeps for such tasks every second, so the fault tests wait seconds, not an
hour.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import requests
from aiosmtpd.controller import Controller

from alerts.tests.standins import Receiver, SmtpSink, free_port, verify_standard_webhook
from controlplane.local_run import ProductionRun, RedisServer
from tests.support import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

VISIBILITY_TIMEOUT_S = 6
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HELD = "held@example.com"
# Celery beat's line for every periodic task it sends (RedBeat logs through celery.beat).
SENT = re.compile(r'"time": "([^"]+)".*Scheduler: Sending due task alerts-notifications-send ')


class HoldingSmtpSink(SmtpSink):
    """An SMTP server that keeps the first delivery attempt to ``HELD`` waiting in DATA until released, then
    refuses it: the sending worker is caught mid-task, and that attempt never counts as delivered."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts: dict[str, int] = {}
        self.holding = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's hook name)
        for rcpt in envelope.rcpt_tos:
            self.attempts[rcpt] = self.attempts.get(rcpt, 0) + 1
        if HELD in envelope.rcpt_tos and self.attempts[HELD] == 1:
            self.holding.set()
            while not self.release.is_set():
                await asyncio.sleep(0.05)
            return "421 closing, try again later"
        return await super().handle_DATA(server, session, envelope)

    def delivered_to(self, rcpt: str) -> int:
        return sum(rcpt in rcpts for rcpts, _ in self.messages)


@dataclass
class Stack:
    run: ProductionRun
    redis_server: RedisServer
    smtp: HoldingSmtpSink

    def url(self, path: str) -> str:
        return f"{self.run.url}{path}"

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_server.url)

    def beat_sends(self, name: str) -> list[float]:
        """When beat replica ``name`` sent the 5-second periodic task (its log's local times, as epoch seconds)."""
        return [time.mktime(time.strptime(at[:19], "%Y-%m-%d %H:%M:%S"))
                for at in SENT.findall(self.run.processes.log(name))]


def _own_database_url() -> str:
    # The test database's server, a database named after it: several suites may share the server.
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}_prodrun"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    var: Path = tmp_path_factory.mktemp("production")
    sink = HoldingSmtpSink()
    smtp_port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    redis_server = RedisServer(var / "redis").start()
    run = ProductionRun(
        var=var, database_url=_own_database_url(), redis_url=redis_server.url, smtp_port=smtp_port, beats=2,
        ready_delay_s=0.2, log_dir=var / "logs", fresh_database=True, stop_timeout_s=5,
        settings={"CELERY_VISIBILITY_TIMEOUT_S": str(VISIBILITY_TIMEOUT_S), "CELERY_UNACKED_RESTORE_SWEEP_S": "1",
                  "DEPLOYMENT_POLL_SECONDS": "0.3", "WEB_GRACEFUL_TIMEOUT_S": "5"})
    try:
        with run:
            yield Stack(run=run, redis_server=redis_server, smtp=sink)
    finally:
        sink.release.set()
        controller.stop()
        redis_server.stop()


@dataclass
class Customer:
    session: requests.Session
    stack: Stack
    project: str

    def get(self, path: str, **params: object) -> dict:
        response = self.session.get(self.stack.url(f"/api/v1{path}"), params=params, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, body: dict, expect: int = 201) -> dict:
        response = self.session.post(self.stack.url(f"/api/v1{path}"), json=body, timeout=10)
        assert response.status_code == expect, response.text
        return response.json()

    def invite(self, email: str) -> str:
        return self.post("/invitations", {"email": email, "role": "developer"})["id"]

    def invitation(self, invitation_id: str) -> dict:
        (found,) = [i for i in self.get("/invitations", limit=200)["results"] if i["id"] == invitation_id]
        return found


@pytest.fixture(scope="module")
def customer(stack: Stack) -> Iterator[Customer]:
    """Signs up over HTTP, as anyone on the internet can: an organization, its owner, a first project, a key."""
    response = requests.post(stack.url("/api/v1/signup"), timeout=30, json={
        "email": "ada@example.com", "password": "a-long-enough-passphrase", "organization_name": "Analytical",
        "site": "global", "country": "de"})
    assert response.status_code == 201, response.text
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {response.json()['api_key']['key']}"
    api = Customer(session=session, stack=stack, project="")
    api.project = api.get("/projects")["results"][0]["id"]
    yield api
    session.close()  # gunicorn's graceful stop would wait for the kept-alive connection


@dataclass
class Alerting:
    deployment: dict
    channel: dict
    rule: dict
    receiver: Receiver


@pytest.fixture(scope="module")
def alerting(stack: Stack, customer: Customer) -> Iterator[Alerting]:
    """A deployment created over the API and running, a webhook channel to a loopback receiver, and a rule on it.
    Beat evaluates rules every 30 s: the fault tests run meanwhile, and the last test here sees the delivery."""
    created = customer.post("/deployments", {"project": customer.project, "name": "fleet",
                                             "region": "aws-us-east-1", "spec": "basic-1k"}, expect=202)

    def running() -> dict | None:
        body = customer.get(f"/deployments/{created['id']}")
        assert body["status"] != "failed", body
        return body if body["status"] == "running" else None

    deployment = wait_for(running, "the deployment to run", timeout=60)
    with Receiver() as receiver:
        channel = customer.post("/alert-channels", {"name": "on-call", "type": "webhook",
                                                    "config": {"url": f"{receiver.url}/in", "secret": SECRET}})
        # The certificate the reconciler issued before calling the deployment running expires in 90 days: the
        # condition holds at once, so beat's next evaluation fires it and the notifier (every 5 s) delivers it.
        rule = customer.post("/alert-rules", {
            "name": "certificate", "project": customer.project, "deployment": deployment["id"],
            "metric": "certificate_expiry_days", "operator": "<", "threshold": 365, "duration_s": 0,
            "severity": "warning", "channels": [channel["id"]]})
        yield Alerting(deployment=deployment, channel=channel, rule=rule, receiver=receiver)


def test_signup_and_a_deployment_running_in_the_simulated_cluster(stack: Stack, alerting: Alerting):
    from kubernetes import client as k8s_client

    assert alerting.deployment["status"] == "running"
    config = k8s_client.Configuration()
    config.host = stack.run.simulators.env()["KUBERNETES_SIMULATOR_URL"]
    apps = k8s_client.AppsV1Api(k8s_client.ApiClient(config))
    (statefulset,) = apps.list_stateful_set_for_all_namespaces().items
    assert statefulset.status.ready_replicas == 1 and statefulset.metadata.namespace.startswith("mq-")


def test_a_worker_killed_mid_task_loses_no_task(stack: Stack, customer: Customer, alerting: Alerting):
    invitation = customer.invite(HELD)
    # The mail worker has taken the task and is inside the SMTP conversation, the message unacknowledged.
    assert stack.smtp.holding.wait(timeout=30), "the mail worker never reached the SMTP server"
    assert stack.redis().hlen("unacked") >= 1
    processes = stack.run.processes
    processes.kill("worker-mail", signal.SIGKILL)  # the worker's main process, mid-task
    # Its pool process goes with it, as every process of a container does when its PID 1 dies.
    processes.kill("worker-mail", signal.SIGKILL, with_children=True)
    processes.processes["worker-mail"].wait(timeout=10)
    stack.smtp.release.set()
    processes.restart("worker-mail")  # what the kubelet does

    # Once out longer than the visibility timeout, the message goes back to its queue and is sent once.
    wait_for(lambda: stack.smtp.delivered_to(HELD), "the invitation mail", timeout=VISIBILITY_TIMEOUT_S + 40)
    assert stack.smtp.attempts[HELD] == 2 and stack.smtp.delivered_to(HELD) == 1
    wait_for(lambda: customer.invitation(invitation)["email_sent_at"], "the invitation marked sent", timeout=10)


def test_restarting_redis_loses_no_queued_task(stack: Stack, customer: Customer, alerting: Alerting):
    processes = stack.run.processes
    processes.stop("worker-mail")  # its queue fills while nobody consumes it
    emails = [f"queued-{n}@example.com" for n in range(3)]
    for email in emails:
        customer.invite(email)
    assert stack.redis().llen("mail") == len(emails)

    restarted_at = time.time()
    # SIGTERM, then a new server on the same port and directory: with no RDB snapshots configured, whatever it
    # still holds came back from its append-only file.
    stack.redis_server.restart()
    assert stack.redis().llen("mail") == len(emails)
    processes.restart("worker-mail")
    for email in emails:
        wait_for(lambda email=email: stack.smtp.delivered_to(email), f"the mail to {email}", timeout=40)

    # The web tier, the other workers and beat reconnected: a new request is queued and mailed, and beat goes on.
    assert requests.get(stack.url("/readyz"), timeout=10).status_code == 200
    customer.invite("after-restart@example.com")
    wait_for(lambda: stack.smtp.delivered_to("after-restart@example.com"), "the mail after the restart", timeout=40)
    assert all(stack.smtp.delivered_to(email) == 1 for email in emails)

    def sent_since_restart() -> bool:
        return any(at > restarted_at for at in stack.beat_sends("beat-1") + stack.beat_sends("beat-2"))

    wait_for(sent_since_restart, "beat to send again after the restart", timeout=20)


def test_a_task_asked_for_while_redis_is_down_is_kept_and_sent_when_it_is_back(stack: Stack, customer: Customer,
                                                                                alerting: Alerting):
    stack.redis_server.stop()
    try:
        # The invitation commits; its mail task cannot be queued, so it is kept in PostgreSQL, and the request
        # still answers as it would have.
        invitation = customer.invite("while-down@example.com")
    finally:
        stack.redis_server.start()
    assert not customer.invitation(invitation)["email_sent_at"]
    # Beat's pending-tasks-send (every 10 s) queues it once Redis is back; the mail worker sends it.
    wait_for(lambda: stack.smtp.delivered_to("while-down@example.com"), "the mail asked for while Redis was down",
             timeout=60)
    assert stack.smtp.delivered_to("while-down@example.com") == 1


def test_the_alert_is_delivered_to_the_webhook(customer: Customer, alerting: Alerting):
    wait_for(lambda: alerting.receiver.requests, "the alert's webhook", timeout=75)
    fired = verify_standard_webhook(alerting.receiver.requests[0], SECRET)
    assert fired["type"] == "alert.firing" and fired["rule"]["id"] == alerting.rule["id"]
    assert fired["deployment"]["id"] == alerting.deployment["id"]
    # The worker records the outcome after the receiver has answered: wait for the record, not just the request.
    wait_for(lambda: customer.get("/notifications")["results"][0]["status"] == "delivered",
             "the delivery's record", timeout=30)
    (logged,) = customer.get("/notifications")["results"]
    assert (logged["status"], logged["channel"]) == ("delivered", alerting.channel["id"])


def test_two_beat_replicas_schedule_nothing_twice(stack: Stack):
    processes = stack.run.processes
    assert processes.processes["beat-1"].poll() is None and processes.processes["beat-2"].poll() is None
    first, second = stack.beat_sends("beat-1"), stack.beat_sends("beat-2")
    # One replica holds RedBeat's lock and schedules; the other waits on it. Had the holder died, the other would
    # have taken over after it, never beside it.
    assert not first or not second or max(first) < min(second) or max(second) < min(first), (first, second)
    sends = sorted(first + second)
    assert len(sends) >= 3
    # A 5-second task is sent once per interval (twice per interval if both replicas scheduled). The log's times
    # are whole seconds, hence the slack of one send.
    assert len(sends) <= (sends[-1] - sends[0]) / 5 + 2, sends
