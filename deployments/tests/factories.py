from __future__ import annotations

import factory

from deployments.models import Deployment, Operation, Peering, Region, Spec
from projects.tests.factories import OrganizationFactory, ProjectFactory


class DeploymentFactory(factory.django.DjangoModelFactory):
    """Needs the catalog loaded (the session fixture syncs it)."""

    class Meta:
        model = Deployment

    organization = factory.SubFactory(OrganizationFactory)
    project = factory.SubFactory(ProjectFactory, organization=factory.SelfAttribute("..organization"))
    name = factory.Sequence(lambda n: f"broker-{n}")
    region = factory.LazyFunction(lambda: Region.objects.get(id="aws-us-east-1"))
    spec = factory.LazyFunction(lambda: Spec.objects.get(id="basic-1k"))
    target_spec = factory.SelfAttribute("spec")
    tier = factory.SelfAttribute("spec.tier")
    status = "running"
    node_cookie = "cookie"
    dashboard_password = "password"


class PeeringFactory(factory.django.DjangoModelFactory):
    """An AWS peering of a professional deployment, as recorded before the worker ran."""

    class Meta:
        model = Peering

    organization = factory.SubFactory(OrganizationFactory)
    deployment = factory.SubFactory(DeploymentFactory, organization=factory.SelfAttribute("..organization"),
                                    spec=factory.LazyFunction(lambda: Spec.objects.get(id="pro-1k")))
    provider = "aws"
    cidr = factory.Sequence(lambda n: f"10.{20 + n % 60}.0.0/16")
    account_id = "111122223333"
    vpc_id = "vpc-0123456789abcdef0"
    peer_region = "us-east-1"
    status = "pending"


class OperationFactory(factory.django.DjangoModelFactory):
    """A create operation of a new deployment, still pending."""

    class Meta:
        model = Operation

    organization = factory.SubFactory(OrganizationFactory)
    deployment = factory.SubFactory(DeploymentFactory, organization=factory.SelfAttribute("..organization"))
    project = factory.SelfAttribute("deployment.project")
    type = "create"
    steps = factory.LazyFunction(lambda: [{"name": "pending", "status": "running", "started_at": None,
                                           "finished_at": None, "cancellable": True}])
    current_step = "pending"
