"""Fixtures of the billing API tests."""

from __future__ import annotations

import pytest

from projects.roles import Role
from projects.tests.factories import OrganizationFactory, make_api_key


@pytest.fixture
def org():
    return OrganizationFactory(country="DE")


@pytest.fixture
def client_for(org, make_client):
    """An API client of ``org`` with a key of the given role (owner by default)."""

    def _make(role: str = Role.OWNER):
        _, secret = make_api_key(org, role=role)
        return make_client(secret)

    return _make
