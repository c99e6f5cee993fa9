"""No list endpoint runs a query per row: for every paginated ``GET`` in the OpenAPI schema (found by route
discovery, so a new list is covered the day it is added), the queries at ``limit=100`` equal those at
``limit=10`` over more than ten rows of every kind the list shows (NetBox's approach).

A new list endpoint fails ``test_every_list_endpoint_has_rows_to_list`` until ``ROWS`` says how to fill it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from drf_spectacular.generators import SchemaGenerator

from alerts.tests.factories import AlertChannelFactory, AlertFactory, AlertRuleFactory, NotificationFactory
from billing.tests.factories import BudgetFactory, InvoiceFactory
from deployments.models import DeploymentEvent, MqttUser, PeeringEvent, Region, Spec
from deployments.tests.factories import DeploymentFactory, OperationFactory, PeeringFactory
from projects.models import Organization
from projects.roles import Role
from projects.tests.factories import (
    ApiKeyFactory,
    AuditEventFactory,
    InvitationFactory,
    MembershipFactory,
    ProjectFactory,
    make_api_key,
)

COUNT = 12  # more than the smaller page, so a per-row query would show as 10 against 12


def _list_paths() -> list[str]:
    raw = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(path for path, item in raw["paths"].items()
                  if "get" in item and any(p["name"] == "limit" and p["in"] == "query"
                                           for p in item["get"].get("parameters", [])))


LIST_PATHS = _list_paths()


class Fleet:
    """One organization with ``COUNT`` rows of everything, and the deployment and peering the nested lists
    belong to."""

    def __init__(self, org: Organization) -> None:
        self.org = org
        self.project = ProjectFactory(organization=org)
        self.deployment = DeploymentFactory(organization=org, project=self.project,
                                            spec=Spec.objects.get(id="pro-1k"))  # peerable
        self.peering = PeeringFactory(organization=org, deployment=self.deployment)


def _channels(fleet: Fleet) -> None:
    for index in range(COUNT):
        kind = ("email", "webhook", "pagerduty")[index % 3]
        config = {"email": {"recipients": ["ops@example.com"]},
                  "webhook": {"url": "https://hooks.example.com/x", "secret": "s" * 24, "headers": {"X-A": "b"}},
                  "pagerduty": {"routing_key": "r" * 32}}[kind]
        AlertChannelFactory(organization=fleet.org, type=kind, config=config)


def _rules(fleet: Fleet) -> None:
    channels = [AlertChannelFactory(organization=fleet.org) for _ in range(2)]
    for _ in range(COUNT):
        rule = AlertRuleFactory(organization=fleet.org, project=fleet.project, deployment=fleet.deployment)
        rule.channels.set(channels)


def _deployment_events(fleet: Fleet) -> None:
    for _ in range(COUNT):
        DeploymentEvent.objects.create(organization=fleet.org, deployment=fleet.deployment, to_status="running",
                                       spec=fleet.deployment.spec)


def _peering_events(fleet: Fleet) -> None:
    for _ in range(COUNT):
        PeeringEvent.objects.create(organization=fleet.org, peering=fleet.peering, to_status="pending")


def _mqtt_users(fleet: Fleet) -> None:
    for index in range(COUNT):
        MqttUser.objects.create(deployment=fleet.deployment, username=f"u{index}", username_key=f"u{index}",
                                algorithm="pbkdf2_sha256", password_hash="0" * 64, salt="saltsalt")


def _peerings(fleet: Fleet) -> None:
    for _ in range(COUNT):
        PeeringFactory(organization=fleet.org, deployment=fleet.deployment)


def _operations(fleet: Fleet) -> None:
    for _ in range(COUNT):
        OperationFactory(organization=fleet.org, deployment=fleet.deployment)


def _invoices(fleet: Fleet) -> None:
    account = InvoiceFactory(organization=fleet.org, period_start=date(2025, 1, 1), period_end=date(2025, 2, 1)).account
    for month in range(2, COUNT + 1):
        InvoiceFactory(organization=fleet.org, account=account, period_start=date(2025, month, 1),
                       period_end=date(2025 + month // 12, month % 12 + 1, 1))


def _catalog(model: type[Region] | type[Spec]) -> Callable[[Fleet], None]:
    def make(fleet: Fleet) -> None:
        template = model.objects.filter(active=True).first()
        assert template is not None
        for index in range(COUNT):
            template.pk = f"{template.pk.split('--')[0]}--{index}"
            template.save(force_insert=True)
    return make


# path -> how to put COUNT rows in it (None: the rows are not in the database; the reason says where).
ROWS: dict[str, Callable[[Fleet], None] | str] = {
    "/api/v1/alert-channels": _channels,
    "/api/v1/alert-rules": _rules,
    "/api/v1/alerts": lambda f: [AlertFactory(organization=f.org, rule__project=f.project, deployment=f.deployment)
                                 for _ in range(COUNT)],
    "/api/v1/api-keys": lambda f: [ApiKeyFactory(organization=f.org) for _ in range(COUNT)],
    "/api/v1/audit-events": lambda f: [AuditEventFactory(organization=f.org) for _ in range(COUNT)],
    "/api/v1/budgets": lambda f: [BudgetFactory(organization=f.org, project=ProjectFactory(organization=f.org))
                                  for _ in range(COUNT)],  # one budget per project
    "/api/v1/deployments": lambda f: [DeploymentFactory(organization=f.org, project=f.project)
                                      for _ in range(COUNT)],
    "/api/v1/deployments/{id}/clients": "connected clients are asked of the broker, not the database",
    "/api/v1/deployments/{id}/events": _deployment_events,
    "/api/v1/deployments/{id}/mqtt-users": _mqtt_users,
    "/api/v1/deployments/{id}/peerings": _peerings,
    "/api/v1/invitations": lambda f: [InvitationFactory(organization=f.org) for _ in range(COUNT)],
    "/api/v1/invoices": _invoices,
    "/api/v1/members": lambda f: [MembershipFactory(organization=f.org, role=Role.DEVELOPER) for _ in range(COUNT)],
    "/api/v1/notifications": lambda f: [NotificationFactory(organization=f.org) for _ in range(COUNT)],
    "/api/v1/peerings": _peerings,
    "/api/v1/operations": _operations,
    "/api/v1/peerings/{id}/events": _peering_events,
    "/api/v1/projects": lambda f: [ProjectFactory(organization=f.org) for _ in range(COUNT)],
    "/api/v1/regions": _catalog(Region),
    "/api/v1/sessions": "a person's own console sessions, which an API key (this test's client) has none of; "
                        "the list is one query over ConsoleSession with nothing per row",
    "/api/v1/specs": _catalog(Spec),
}


def test_every_list_endpoint_has_rows_to_list() -> None:
    assert set(LIST_PATHS) == set(ROWS), "say in ROWS how to fill a new list endpoint (or why it has no rows)"


def _url(path: str, fleet: Fleet) -> str:
    owner = fleet.peering if path.startswith("/api/v1/peerings/") else fleet.deployment
    return path.replace("{id}", owner.id)


def _queries(client: Any, url: str, limit: int) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, {"limit": limit})
    assert response.status_code == 200, response.content
    return len(captured), len(response.json()["results"])


@pytest.mark.django_db
@pytest.mark.parametrize("path", [path for path in LIST_PATHS if callable(ROWS.get(path))])
def test_a_longer_page_costs_no_more_queries(path: str, make_client) -> None:
    fleet = Fleet(MembershipFactory(role=Role.OWNER).organization)
    fill = ROWS[path]
    assert callable(fill)
    fill(fleet)
    _, secret = make_api_key(fleet.org, role=Role.OWNER)
    client, url = make_client(secret), _url(path, fleet)
    _queries(client, url, 1)  # caches (the key, the organization) warm, as on any request after the first
    short, shown_short = _queries(client, url, 10)
    long, shown_long = _queries(client, url, 100)
    assert shown_short == 10 and shown_long > 10, (shown_short, shown_long)
    assert long == short, f"{path}: {short} queries for 10 rows, {long} for {shown_long}"
