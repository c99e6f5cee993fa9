"""Every ``OutputSerializer`` renders exactly what DRF's own ``to_representation`` renders for the same row (its
fast plan skips DRF's per-field dispatch, never a field or a format), and its schema is the DRF one."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from controlplane.api.serializers import OutputSerializer, format_datetime
from deployments.api import serializers as deployment_serializers
from deployments.models import CertificateAuthority, DeploymentEvent, ServerCertificate
from deployments.tests.factories import DeploymentFactory
from projects.api import serializers as project_serializers
from projects.api import sso as project_sso_api
from projects.models import AuditEvent, ConsoleSession
from projects.selectors import scim_group_list
from projects.tenancy import Principal
from projects.tests.factories import (
    InvitationFactory,
    MembershipFactory,
    OrganizationFactory,
    ProjectFactory,
    ScimGroupFactory,
    SsoConnectionFactory,
    SsoDomainFactory,
    make_api_key,
)

pytestmark = pytest.mark.django_db

MODULES = (project_serializers, project_sso_api, deployment_serializers)


def _all_subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_all_subclasses(sub)}
    return found


def _rows() -> list:
    org = OrganizationFactory()
    project = ProjectFactory(organization=org, description="a project")
    member = MembershipFactory(organization=org, role="developer", projects=[project])
    key, _ = make_api_key(org, role="viewer", projects=[project], created_by=member)
    key.last_used_at, key.last_used_ip = timezone.now(), "10.0.0.1"
    key.save()
    with_cert = DeploymentFactory(organization=org, project=project, endpoints={
        "mqtt": "mqtt://127.0.0.1:1883", "wss": "wss://h:8084/mqtt", "extra": "not rendered"})
    authority = CertificateAuthority.objects.create(
        region=with_cert.region, subject="CN=t", certificate_pem="x", private_key_pem="k",
        fingerprint_sha256="0" * 64, not_before=timezone.now(), not_after=timezone.now() + timedelta(days=9))
    ServerCertificate.objects.create(
        organization=org, deployment=with_cert, authority=authority, host="h", serial_number="1",
        certificate_pem="c", private_key_pem="k", fingerprint_sha256="f" * 64, not_before=timezone.now(),
        not_after=timezone.now() + timedelta(days=90))
    event = DeploymentEvent.objects.create(organization=org, deployment=with_cert, to_status="running",
                                           spec=with_cert.spec, details={"a": [1, None]})
    audit = AuditEvent.objects.create(organization=org, actor_type="system", action="x.y", changes={"k": 1},
                                      ip="127.0.0.1")
    console_session = ConsoleSession.objects.create(user=member.user, session_key="k" * 32,
                                                    device="Firefox 133 on Ubuntu", ip="2001:db8::7")
    group = ScimGroupFactory(organization=org, role="developer")
    group.set_project_limit([project])
    # As the list renders it: with its member count annotated by the selector.
    group = scim_group_list(principal=Principal.for_system(org)).get(pk=group.pk)
    rows = [org, member.user, project, member, key, InvitationFactory(organization=org), event, audit,
            console_session, SsoConnectionFactory(organization=org), SsoDomainFactory(organization=org),
            console_session, group,
            DeploymentFactory(organization=org, project=project),  # no endpoints, no certificate
            type(with_cert).objects.select_related("server_certificate").get(pk=with_cert.pk)]
    key.key = "mqc_secret"  # what ApiKeyCreatedOut adds
    return rows


def test_output_serializers_render_what_drf_renders():
    rows = _rows()
    renderer = JSONRenderer()
    covered, rendered_from_rows = set(), set()
    for cls in _all_subclasses(OutputSerializer):
        if cls.__module__ not in {module.__name__ for module in MODULES}:
            continue
        for row in rows:
            if not isinstance(row, cls.Meta.model):
                continue
            fast = cls(row).data
            slow = serializers.ModelSerializer.to_representation(cls(row), row)
            assert json.loads(renderer.render(fast)) == json.loads(renderer.render(slow)), cls.__name__
            assert list(fast) == list(slow), cls.__name__
            columns = cls.row_columns()
            if columns is not None:  # what a list renders from .values() (ListRowsMixin)
                values = type(row).objects.filter(pk=row.pk).values(*columns).get()
                from_row = cls().render_rows([values])[0]
                assert json.loads(renderer.render(from_row)) == json.loads(renderer.render(slow)), cls.__name__
                assert list(from_row) == list(slow), cls.__name__
                rendered_from_rows.add(cls.__name__)
            covered.add(cls)
    missing = {cls.__name__ for cls in _all_subclasses(OutputSerializer)} - {cls.__name__ for cls in covered}
    assert not missing, f"no row renders through {sorted(missing)}: add one to _rows()"
    assert {"ProjectOut", "DeploymentOut"} <= rendered_from_rows  # the lists that read rows


def test_format_datetime_is_drfs_datetime_field():
    field = serializers.DateTimeField()
    aware = timezone.now()
    assert format_datetime(aware) == field.to_representation(aware)
    naive = aware.replace(tzinfo=None)
    assert format_datetime(naive) == field.to_representation(naive)
    other_zone = aware.astimezone(timezone.get_fixed_timezone(-300))
    assert format_datetime(other_zone) == field.to_representation(other_zone)
    whole_second = aware.replace(microsecond=0)
    assert format_datetime(whole_second) == field.to_representation(whole_second)
    early = aware.replace(year=33)
    assert format_datetime(early) == field.to_representation(early)
    assert format_datetime(None) is None
