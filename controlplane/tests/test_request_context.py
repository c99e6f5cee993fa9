"""Request ids: taken from X-Request-ID when sane and echoed, bound for log lines (the production profile's JSON
lines carry them as fields), carried into Celery messages and sent on outbound calls."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import uuid

import pytest
import redis
from django.conf import settings
from django.test import override_settings

from controlplane import request_context
from controlplane.celery import app as celery_app
from controlplane.outbound import send
from controlplane.queue import registered_task
from controlplane.tests.test_outbound import local_server, ok, url_of
from projects.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def json_log():
    """The production profile's handler (JSON formatter and context filter) on the root logger, into a buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    formatter_config = dict(settings.LOGGING["formatters"]["json"])
    handler.setFormatter(logging.config.DictConfigurator({}).configure_formatter(formatter_config))
    handler.addFilter(request_context.ContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)


def test_a_sane_request_id_is_kept_and_echoed_and_a_bad_one_replaced(client):
    assert client.get("/healthz", HTTP_X_REQUEST_ID="lb-4f2a9c1e-77").headers["X-Request-ID"] == "lb-4f2a9c1e-77"
    forged = client.get("/healthz", HTTP_X_REQUEST_ID="x\nlevel=ERROR forged line").headers["X-Request-ID"]
    assert "\n" not in forged and len(forged) == 32
    assert client.get("/healthz").headers["X-Request-ID"] != client.get("/healthz").headers["X-Request-ID"]
    assert request_context.current("request_id") == ""  # nothing left bound after the request


def test_a_log_line_of_a_request_carries_its_request_and_organization_ids(session_client, json_log, monkeypatch):
    membership = MembershipFactory()
    api = session_client(membership.user, membership.organization_id)

    def logging_list(self, principal):  # a view's log line, written while the request is being answered
        logging.getLogger("deployments.api").warning("listing deployments")
        return original(self, principal)

    from deployments.api.views import DeploymentViewSet

    original = DeploymentViewSet.scoped_queryset
    monkeypatch.setattr(DeploymentViewSet, "scoped_queryset", logging_list)
    response = api.get("/api/v1/deployments", HTTP_X_REQUEST_ID="req-observe-0001")
    assert response.status_code == 200
    line = next(entry for entry in json_log() if entry["message"] == "listing deployments")
    assert line["request_id"] == "req-observe-0001"
    assert line["organization_id"] == membership.organization_id
    assert line["level"] == "WARNING" and line["logger"] == "deployments.api" and "time" in line


def test_a_task_published_during_a_request_carries_its_id_in_the_message_headers():
    """Published for real to the Redis broker, on a queue of its own, and read back from Redis."""
    queue = f"test-request-id-{uuid.uuid4().hex[:8]}"
    tokens = request_context.bind(request_id="req-observe-0002")
    try:
        registered_task("controlplane.tasks.rate_counters_purge").apply_async(queue=queue)
    finally:
        request_context.unbind(tokens)
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        message = json.loads(broker.lpop(queue))
    finally:
        broker.delete(queue)
        broker.close()
        # Publishing declared the queue on the app; leave the app's queue set as the product configures it.
        celery_app.amqp.queues.pop(queue, None)
    assert message["headers"][request_context.TASK_HEADER] == "req-observe-0002"


def test_a_task_logs_with_the_request_id_of_its_message_and_the_deployment_it_names(json_log):
    from controlplane.celery import app

    @app.task(name="tests.request_context.probe", bind=True)
    def probe(self, deployment_id):
        logging.getLogger("tests.probe").warning("probing")

    result = probe.apply(args=["dep_probe0000000000000000"], headers={request_context.TASK_HEADER: "req-observe-0003"})
    line = next(entry for entry in json_log() if entry["message"] == "probing")
    assert line["request_id"] == "req-observe-0003" and line["task_id"] == result.id
    assert line["deployment_id"] == "dep_probe0000000000000000"
    assert request_context.current("task_id") == ""


@override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True)
def test_outbound_calls_send_the_request_id():
    seen = []

    def record(handler):
        seen.append(handler.headers.get("X-Request-ID"))
        ok(handler)

    with local_server({"/hook": record}) as server:
        send("GET", url_of(server, "/hook"))
        tokens = request_context.bind(request_id="req-observe-0004")
        try:
            send("GET", url_of(server, "/hook"))
        finally:
            request_context.unbind(tokens)
    assert seen == [None, "req-observe-0004"]
