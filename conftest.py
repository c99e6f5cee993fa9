"""Fixtures shared by every app's tests. Tests run against real PostgreSQL and Redis (see Makefile)."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

# Stripe stand-in fixtures (localstripe) are used by billing's tests and the cross-app end-to-end tests; the
# browser fixture (Playwright driving Chromium) by the console tests.
pytest_plugins = ["billing.tests.fixtures", "tests.browser", "tests.bench_support"]


def pytest_configure(config: pytest.Config) -> None:
    from django.core.servers.basehttp import WSGIRequestHandler

    # live_server (the browser tests, the SCIM checker) writes a response's headers and its body in separate
    # sends; with Nagle's algorithm on, the body waits for the ACK of the headers, which a keep-alive client
    # delays by 40 ms: ~50 ms a request instead of a few. `manage.py runserver` and gunicorn are not affected.
    WSGIRequestHandler.disable_nagle_algorithm = True


@pytest.fixture(scope="session")
def django_db_setup(request, django_db_setup, django_db_blocker):
    from deployments.services import catalog_sync
    from tests import bench_support

    with django_db_blocker.unblock():
        # Before anything is written: the benchmarks' smoke tests copy this database instead of migrating one each.
        bench_support.make_template(request, django_db_blocker)
        catalog_sync()


@pytest.fixture(autouse=True)
def _fresh_cache():
    # Rate-limit and login-lockout counters live in Redis (controlplane.ratelimit, the cache's database) or in
    # a table the test's transaction rolls back; no test sees another's.
    cache.clear()
    yield


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture
def make_client():
    """A client that authenticates with the given API key secret."""

    def _make(secret: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        return client

    return _make


@pytest.fixture
def session_client():
    """A client logged in to the console as the given user (DRF's test client skips CSRF checks)."""

    def _make(user, organization_id: str | None = None) -> APIClient:
        client = APIClient()
        client.force_login(user)
        if organization_id:
            client.credentials(HTTP_X_ORGANIZATION=organization_id)
        return client

    return _make


@pytest.fixture(autouse=True)
def _catalog_for_transactional_tests(request):
    """Transactional tests empty every table afterwards, the catalog too; load it again for each."""
    marker = request.node.get_closest_marker("django_db")
    if marker is not None and marker.kwargs.get("transaction"):
        request.getfixturevalue("transactional_db")
        from deployments.services import catalog_sync

        catalog_sync()


@pytest.fixture
def smtp():
    """A real SMTP server on loopback (aiosmtpd) that Django's SMTP backend sends to; yields the sink."""
    from django.test import override_settings

    from alerts.tests.standins import SmtpSink, smtp_controller

    sink = SmtpSink()
    controller, port = smtp_controller(sink)
    controller.start()
    try:
        with override_settings(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST="127.0.0.1",
                               EMAIL_PORT=port, EMAIL_USE_TLS=False, EMAIL_HOST_USER="", EMAIL_HOST_PASSWORD=""):
            yield sink
    finally:
        controller.stop()
