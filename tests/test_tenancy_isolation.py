"""The generic stranger test: every API route that takes an object id, called by a member of organization A
on an object of organization B, answers 404 (never 403, never 2xx) for every method it allows.

Routes are discovered from the URL resolver, so a new endpoint is covered the day it is added. A route
whose model has no entry in ``FACTORIES`` (or in ``SHARED`` for catalog data every tenant reads) makes
``test_every_object_route_has_a_factory`` fail: teach this file how to build an org-B object for it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from django.db import models
from django.urls import URLPattern, URLResolver, reverse

from alerts.models import Alert, AlertChannel, AlertRule, Notification
from alerts.tests.factories import AlertChannelFactory, AlertFactory, AlertRuleFactory, NotificationFactory
from billing.models import Budget, Invoice
from billing.tests.factories import BudgetFactory, InvoiceFactory
from controlplane.api import urls as api_urls
from deployments.models import Deployment, MaintenanceExclusion, MqttUser, Operation, Peering, Region, Spec
from deployments.tests.factories import DeploymentFactory, OperationFactory, PeeringFactory
from projects.api.base import OrganizationScopedViewSet
from projects.models import ApiKey, AuditEvent, ConsoleSession, Invitation, Membership, Organization, Project
from projects.roles import Role
from projects.tenancy import Principal
from projects.tests.factories import (
    ApiKeyFactory,
    AuditEventFactory,
    InvitationFactory,
    MembershipFactory,
    OrganizationFactory,
    ProjectFactory,
    make_api_key,
)

pytestmark = pytest.mark.django_db

#: model → how to build one in the given organization.
FACTORIES: dict[type[models.Model], Callable[[Organization], models.Model]] = {
    Project: lambda org: ProjectFactory(organization=org),
    Membership: lambda org: MembershipFactory(organization=org, role=Role.VIEWER),
    Invitation: lambda org: InvitationFactory(organization=org),
    ApiKey: lambda org: ApiKeyFactory(organization=org),
    AuditEvent: lambda org: AuditEventFactory(organization=org),
    Deployment: lambda org: DeploymentFactory(organization=org),
    Peering: lambda org: PeeringFactory(organization=org),
    Operation: lambda org: OperationFactory(organization=org),
    AlertChannel: lambda org: AlertChannelFactory(organization=org),
    AlertRule: lambda org: AlertRuleFactory(organization=org),
    Alert: lambda org: AlertFactory(organization=org),
    Notification: lambda org: NotificationFactory(organization=org),
    Invoice: lambda org: InvoiceFactory(organization=org),
    Budget: lambda org: BudgetFactory(organization=org),
    # A person's own, not the organization's: a session of one of B's members.
    ConsoleSession: lambda org: ConsoleSession.objects.create(
        user=MembershipFactory(organization=org).user, session_key=f"s{org.pk}", device="Firefox on Linux"),
}

#: models every organization reads (no organization column): there is nothing to isolate.
SHARED: set[type[models.Model]] = {Region, Spec}

SKIPPED_METHODS = {"options", "head"}


@dataclass(frozen=True)
class Route:
    name: str  # "api:project-detail"
    kwargs: tuple[str, ...]  # the URL's named groups
    view: type
    methods: tuple[str, ...]

    def __str__(self) -> str:
        return self.name


def _walk(patterns, namespace: str = "api") -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}:{pattern.namespace}" if pattern.namespace else namespace
            yield from _walk(pattern.url_patterns, inner)
        else:
            yield namespace, pattern


def object_routes() -> list[Route]:
    """Every route under /api/v1 with an object id in its URL."""
    routes = []
    for namespace, pattern in _walk(api_urls.urlpatterns):
        kwargs = tuple(pattern.pattern.regex.groupindex)
        if not kwargs or not pattern.name:
            continue
        callback = pattern.callback
        view = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        if view is None:
            raise AssertionError(f"{pattern.name}: a plain function view with an id in the URL; use the scoped base")
        actions = getattr(callback, "actions", None)
        if actions is not None:
            methods = tuple(sorted(actions))
        else:
            methods = tuple(m for m in view.http_method_names if hasattr(view, m) and m not in SKIPPED_METHODS)
        routes.append(Route(f"{namespace}:{pattern.name}", kwargs, view, methods))
    return routes


ROUTES = object_routes()
CALLS = [(route, method) for route in ROUTES for method in route.methods if method not in SKIPPED_METHODS]


def _mqtt_user(deployment) -> dict[str, str]:
    """A built-in database user of the stranger's deployment, so the nested URL names a row that exists."""
    MqttUser.objects.create(deployment=deployment, username="device-1", username_key="device-1",
                            algorithm="pbkdf2_sha256", password_hash="0" * 64, salt="saltsalt")
    return {"username": "device-1"}


def _maintenance_exclusion(owner) -> dict[str, str]:
    """An exclusion of the stranger's deployment or project, so the nested URL names a row that exists."""
    owned = {"deployment": owner} if isinstance(owner, Deployment) else {"project": owner}
    exclusion = MaintenanceExclusion.objects.create(organization=owner.organization, start_date=dt.date(2027, 1, 1),
                                                    end_date=dt.date(2027, 1, 2), **owned)
    return {"exclusion_id": exclusion.pk}


#: URL arguments besides the object's ``pk``: how to make the nested row they name, given the object.
NESTED_KWARGS = {("pk", "username"): _mqtt_user,
                 ("pk", "exclusion_id"): _maintenance_exclusion,
                 # A connected client lives on the broker only: the stranger is refused before it is asked.
                 ("pk", "clientid"): lambda deployment: {"clientid": "client-1"}}


def route_model(route: Route, principal: Principal) -> type[models.Model]:
    if not issubclass(route.view, OrganizationScopedViewSet):
        raise AssertionError(f"{route}: {route.view.__name__} does not derive from OrganizationScopedViewSet")
    if route.kwargs != ("pk",) and route.kwargs not in NESTED_KWARGS:
        raise AssertionError(f"{route}: URL arguments {route.kwargs}; teach this test how to fill them")
    return route.view().scoped_queryset(principal).model


def test_routes_are_discovered():
    names = {route.name for route in ROUTES}
    assert {"api:project-detail", "api:member-detail", "api:invitation-detail", "api:api-key-detail",
            "api:audit-event-detail"} <= names
    assert len(CALLS) >= 10


def test_every_object_route_has_a_factory():
    org = OrganizationFactory()
    principal = Principal.for_system(org)
    missing = []
    for route in ROUTES:
        model = route_model(route, principal)
        if model not in FACTORIES and model not in SHARED:
            missing.append(f"{route} ({model.__name__})")
    assert not missing, f"add a factory for these routes' models to FACTORIES: {missing}"


def test_shared_models_really_have_no_organization():
    for model in SHARED:
        assert "organization" not in {f.name for f in model._meta.get_fields()}, model


@pytest.fixture(params=["api_key", "session"])
def stranger(request, make_client, session_client):
    """An owner of organization A: every permission, just not over B."""
    org_a = OrganizationFactory()
    if request.param == "api_key":
        _, secret = make_api_key(org_a, role=Role.OWNER)
        return make_client(secret)
    owner = MembershipFactory(organization=org_a, role=Role.OWNER)
    return session_client(owner.user)


@pytest.mark.parametrize(("route", "method"), CALLS, ids=[f"{method.upper()} {route}" for route, method in CALLS])
def test_stranger_gets_404(stranger, route, method):
    org_b = OrganizationFactory()
    MembershipFactory(organization=org_b, role=Role.OWNER)
    model = route_model(route, Principal.for_system(org_b))
    if model in SHARED:
        pytest.skip(f"{model.__name__} is shared catalog data")
    if model not in FACTORIES:
        pytest.fail(f"{route}: no factory for {model.__name__} in FACTORIES")
    obj = FACTORIES[model](org_b)
    nested = NESTED_KWARGS[route.kwargs](obj) if route.kwargs in NESTED_KWARGS else {}
    url = reverse(route.name, kwargs={"pk": obj.pk, **nested})
    before = model.objects.filter(pk=obj.pk).values().first()
    response = getattr(stranger, method)(url, {}, format="json")
    assert response.status_code == 404, (method, url, response.status_code, response.content)
    assert response["Content-Type"] == "application/problem+json"
    # Indistinguishable from an id that exists nowhere.
    ghost = f"{str(obj.pk).split('_')[0]}_{'z' * 20}"
    ghost_response = getattr(stranger, method)(reverse(route.name, kwargs={"pk": ghost, **nested}), {},
                                              format="json")
    assert ghost_response.status_code == 404
    assert response.content.decode().replace(str(obj.pk), ghost) == ghost_response.content.decode()
    assert model.objects.filter(pk=obj.pk).values().first() == before, "the stranger changed the object"
