from __future__ import annotations

import factory
from django.utils import timezone

from projects.authentication import generate_api_key_secret
from projects.models import ApiKey, Membership, Organization, Project, User
from projects.roles import Role

PASSWORD = "correct-horse-battery-staple"


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Org {n}")
    site = "global"
    country = "DE"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    name = factory.Faker("name")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"project-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership
        skip_postgeneration_save = True

    organization = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.OWNER

    @factory.post_generation
    def projects(obj, create, extracted, **kwargs):
        if create and extracted:
            obj.projects.set(extracted)


def make_api_key(organization: Organization, role: str = Role.OWNER, projects=(), expires_at=None,
                 name: str = "test key") -> tuple[ApiKey, str]:
    """An API key made directly (not through the service), returning (key, secret)."""
    full, prefix, secret_hash = generate_api_key_secret()
    key = ApiKey.objects.create(organization=organization, name=name, role=role, prefix=prefix,
                                secret_hash=secret_hash, expires_at=expires_at, created_at=timezone.now())
    key.projects.set(projects)
    return key, full
