"""Fixtures shared by every app's tests. Tests run against real PostgreSQL and Redis (see Makefile)."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    from deployments.services import catalog_sync

    with django_db_blocker.unblock():
        catalog_sync()


@pytest.fixture(autouse=True)
def _fresh_cache():
    # Rate-limit and login-lockout counters live in the cache (Redis); no test sees another's.
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
