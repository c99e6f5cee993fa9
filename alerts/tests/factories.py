from __future__ import annotations

import factory
from django.utils import timezone

from alerts.models import Alert, AlertChannel, AlertRule, Notification
from deployments.tests.factories import DeploymentFactory
from projects.tests.factories import OrganizationFactory, ProjectFactory


class AlertChannelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AlertChannel

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"ops-{n}")
    type = "email"
    config = factory.LazyFunction(lambda: {"recipients": ["ops@example.com"]})


class AlertRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AlertRule

    organization = factory.SubFactory(OrganizationFactory)
    project = factory.SubFactory(ProjectFactory, organization=factory.SelfAttribute("..organization"))
    name = factory.Sequence(lambda n: f"rule-{n}")
    metric = "connections_pct"
    operator = ">"
    threshold = 80
    duration_s = 60
    severity = "critical"
    repeat_interval_s = 3600


class AlertFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Alert

    organization = factory.SubFactory(OrganizationFactory)
    rule = factory.SubFactory(AlertRuleFactory, organization=factory.SelfAttribute("..organization"))
    deployment = factory.SubFactory(DeploymentFactory, organization=factory.SelfAttribute("..organization"),
                                    project=factory.SelfAttribute("..rule.project"))
    started_at = factory.LazyFunction(timezone.now)
    value = 90.0


class NotificationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Notification

    organization = factory.SubFactory(OrganizationFactory)
    channel = factory.SubFactory(AlertChannelFactory, organization=factory.SelfAttribute("..organization"))
    kind = "test"
    payload = factory.LazyFunction(lambda: {"summary": "test"})
