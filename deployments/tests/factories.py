from __future__ import annotations

import factory

from deployments.models import Deployment, Region, Spec
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
