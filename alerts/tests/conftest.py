"""Fixtures the alerts tests share."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.test import override_settings

from alerts.tests.standins import SmtpSink, smtp_controller
from controlplane.celery import app as celery_app


@contextmanager
def eager_tasks() -> Iterator[None]:
    before = celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = True, True
    try:
        yield
    finally:
        celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = before


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    """A real SMTP server on loopback (aiosmtpd) that Django's SMTP backend sends to."""
    sink = SmtpSink()
    controller, port = smtp_controller(sink)
    controller.start()
    try:
        with override_settings(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST="127.0.0.1",
                               EMAIL_PORT=port, EMAIL_USE_TLS=False, EMAIL_HOST_USER="", EMAIL_HOST_PASSWORD=""):
            yield sink
    finally:
        controller.stop()
