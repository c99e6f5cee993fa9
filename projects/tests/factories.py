from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

import factory
from django.utils import timezone

from projects.authentication import generate_api_key_secret, hash_secret, invitation_token_hash
from projects.models import (
    ApiKey,
    AuditEvent,
    Invitation,
    Membership,
    Organization,
    Project,
    ScimGroup,
    SsoConnection,
    SsoDomain,
    User,
)
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
            obj.set_project_limit(list(extracted))


def make_api_key(organization: Organization, role: str = Role.OWNER, projects=(), expires_at=None,
                 name: str = "test key", created_by: Membership | None = None) -> tuple[ApiKey, str]:
    """An API key made directly (not through the service), returning (key, secret): an organization
    service key unless ``created_by`` names the member whose key it is."""
    full, prefix, secret_hash = generate_api_key_secret()
    key = ApiKey.objects.create(organization=organization, name=name, role=role, prefix=prefix,
                                secret_hash=secret_hash, expires_at=expires_at, created_at=timezone.now(),
                                created_by=created_by, service=created_by is None)
    key.set_project_limit(list(projects))
    return key, full


class InvitationFactory(factory.django.DjangoModelFactory):
    """A pending invitation; ``token`` (not a model field) is the secret the email would carry."""

    class Meta:
        model = Invitation
        skip_postgeneration_save = True
        exclude = ["token"]

    organization = factory.SubFactory(OrganizationFactory)
    email = factory.Sequence(lambda n: f"invitee{n}@example.com")
    role = Role.DEVELOPER
    token = factory.LazyFunction(lambda: secrets.token_urlsafe(32))
    token_hash = factory.LazyAttribute(lambda o: invitation_token_hash(o.token))
    token_encrypted = factory.LazyAttribute(lambda o: o.token)
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=7))

    @factory.post_generation
    def projects(obj, create, extracted, **kwargs):
        if create and extracted:
            obj.set_project_limit(list(extracted))


class ApiKeyFactory(factory.django.DjangoModelFactory):
    """An API key whose secret is unknown (use :func:`make_api_key` to call the API with one)."""

    class Meta:
        model = ApiKey
        skip_postgeneration_save = True

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"key {n}")
    role = Role.VIEWER
    service = True
    prefix = factory.LazyFunction(lambda: secrets.token_hex(6))
    secret_hash = factory.LazyFunction(lambda: hash_secret(secrets.token_urlsafe(32)))

    @factory.post_generation
    def projects(obj, create, extracted, **kwargs):
        if create and extracted:
            obj.set_project_limit(list(extracted))


class AuditEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AuditEvent

    organization = factory.SubFactory(OrganizationFactory)
    actor_type = AuditEvent.ActorType.SYSTEM
    actor_label = "system"
    action = "project.update"
    target_type = "project"
    target_id = factory.Sequence(lambda n: f"prj_{n:020d}")


def operator_user(email: str = "ops@example.com", password: str = PASSWORD, *, superuser: bool = True) -> User:
    """An operator as the ops site requires one: staff with two-factor login on (a confirmed authenticator whose
    secret is on ``user.totp``, for a test that logs in through the form)."""
    import pyotp

    from projects.models import TwoFactorDevice

    user = User.objects.create_user(email, password, is_staff=True, is_superuser=superuser)
    device = TwoFactorDevice.objects.create(user=user, secret=pyotp.random_base32(), confirmed_at=timezone.now())
    user.totp = pyotp.TOTP(device.secret)
    return user


class SsoConnectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SsoConnection

    organization = factory.SubFactory(OrganizationFactory)
    issuer = "https://idp.example.com"
    client_id = "mqcloud"
    client_secret = "idp-client-secret"
    group_mappings = factory.LazyFunction(lambda: [{"group": "admins", "role": "admin", "projects": []}])


class SsoDomainFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SsoDomain

    organization = factory.SubFactory(OrganizationFactory)
    domain = factory.Sequence(lambda n: f"d{n}.example.com")
    token_encrypted = factory.LazyFunction(lambda: secrets.token_urlsafe(24))
    token_hash = factory.LazyAttribute(lambda o: hashlib.sha256(o.token_encrypted.encode()).hexdigest())


class ScimGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ScimGroup
        skip_postgeneration_save = True

    organization = factory.SubFactory(OrganizationFactory)
    display_name = factory.Sequence(lambda n: f"scim-group-{n}")
    role = Role.VIEWER

    @factory.post_generation
    def projects(obj, create, extracted, **kwargs):
        if create and extracted:
            obj.set_project_limit(list(extracted))
