"""Property-based fuzzing of our own OpenAPI schema with schemathesis, through the WSGI app.

Each operation gets a bounded, derandomized run; the only check is that nothing answers 5xx. Requests
carry an owner API key, so they get past authentication and exercise the real handlers.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error

from controlplane.wsgi import application
from deployments.tests.factories import DeploymentFactory
from projects.roles import Role
from projects.tests.factories import (
    ApiKeyFactory,
    AuditEventFactory,
    InvitationFactory,
    MembershipFactory,
    OrganizationFactory,
    ProjectFactory,
    make_api_key,
)

SCHEMA_PATH = "/api/v1/schema?format=json"
MAX_EXAMPLES = 15
HTTP_METHODS = {"get", "put", "post", "patch", "delete"}


def _operations() -> list[tuple[str, str]]:
    # The same generator the schema endpoint uses; no request and no database needed at collection time.
    raw = SchemaGenerator().get_schema(request=None, public=True)
    return [(path, method.upper()) for path, item in raw["paths"].items() for method in item
            if method in HTTP_METHODS]


OPERATIONS = _operations()


@pytest.fixture(scope="module")
def api_schema(django_db_blocker):
    with django_db_blocker.unblock():
        return schemathesis.openapi.from_wsgi(SCHEMA_PATH, application)


@pytest.fixture
def keep_test_connection():
    """The WSGI handler closes the database connection after each request; inside a test that would end
    the test's transaction. Django's own test client disconnects the same signal handlers."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@dataclass
class Owner:
    headers: dict[str, str]
    ids: dict[str, str]  # collection ("projects") → the id of a real object in it


@pytest.fixture
def owner(db, settings, keep_test_connection) -> Owner:
    settings.API_RATE_LIMITS = {"credential": "100000/min", "ip": "100000/min", "signup": "100000/min"}
    org = OrganizationFactory()
    MembershipFactory(organization=org, role=Role.OWNER)
    project = ProjectFactory(organization=org)
    _, secret = make_api_key(org, role=Role.OWNER)
    ids = {
        "projects": project.id,
        "members": MembershipFactory(organization=org, role=Role.VIEWER).id,
        "invitations": InvitationFactory(organization=org).id,
        "api-keys": ApiKeyFactory(organization=org).id,
        "audit-events": AuditEventFactory(organization=org).id,
        "deployments": DeploymentFactory(organization=org, project=project).id,
        "regions": "aws-us-east-1",
        "specs": "basic-1k",
    }
    return Owner(headers={"Authorization": f"Bearer {secret}"}, ids=ids)


def test_every_operation_is_fuzzed():
    assert len(OPERATIONS) >= 20
    assert ("/api/v1/projects", "POST") in OPERATIONS


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_no_server_errors(api_schema, owner, path, method):
    operation = api_schema[path][method]
    real_id = owner.ids.get(path.split("/")[3]) if "{id}" in path else None

    @settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def fuzz(case):
        generated = (case.path_parameters or {}).get("id")
        if real_id and generated is not None and sum(map(ord, generated)) % 4:
            case.path_parameters["id"] = real_id  # most examples hit a real object, the rest a random id
        case.call_and_validate(headers=owner.headers, checks=[not_a_server_error])

    fuzz()
