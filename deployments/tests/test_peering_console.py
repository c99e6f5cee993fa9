"""Console pages of VPC peering and the ops site's actions."""

from __future__ import annotations

import pytest
from django.urls import reverse

from deployments.models import Peering, Spec
from deployments.peering import worker
from deployments.tests.conftest import CUSTOMER_ACCOUNT
from deployments.tests.factories import DeploymentFactory, PeeringFactory
from projects.roles import Role
from projects.tests.factories import MembershipFactory, operator_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def member(client):
    membership = MembershipFactory(role=Role.DEVELOPER)
    client.force_login(membership.user)
    client.deployment = DeploymentFactory(organization=membership.organization, spec=Spec.objects.get(id="pro-1k"))
    return client


def test_section_lists_peerings_and_polls_while_transitional(member):
    deployment = member.deployment
    PeeringFactory(organization=deployment.organization, deployment=deployment, cidr="10.20.0.0/16")
    page = member.get(reverse("console:deployment-detail", args=[deployment.id])).content.decode()
    assert reverse("console:deployment-peerings", args=[deployment.id]) in page
    section = member.get(reverse("console:deployment-peerings", args=[deployment.id]),
                         HTTP_HX_REQUEST="true").content.decode()
    assert "10.20.0.0/16" in section and "Pending" in section and 'hx-trigger="every 3s"' in section
    Peering.objects.update(status="active")
    section = member.get(reverse("console:deployment-peerings", args=[deployment.id])).content.decode()
    assert "Active" in section and "every 3s" not in section


def test_wizard_shows_reasons_inline_then_instructions(member):
    deployment = member.deployment
    url = reverse("console:peering-create", args=[deployment.id])
    form = member.get(url).content.decode()
    assert "AWS account id" in form and "Tenant id" not in form
    bad = member.post(url, {"provider": "aws", "account_id": "123", "vpc_id": "vpc-0123456789abcdef0",
                            "region": "us-east-1", "cidr": "8.8.8.0/24"})
    assert bad.status_code == 400
    text = bad.content.decode()
    assert "12 digits" in text and "not a private range" in text
    ok = member.post(url, {"provider": "aws", "account_id": CUSTOMER_ACCOUNT, "vpc_id": "vpc-0123456789abcdef0",
                           "region": "us-east-1", "cidr": "10.20.0.0/16"})
    peering = Peering.objects.get()
    assert ok.status_code == 302 and ok["Location"] == reverse("console:peering-detail", args=[peering.id])
    Peering.objects.filter(pk=peering.id).update(status="pending_acceptance", cloud_id="pcx-0123456789abcdef0")
    detail = member.get(ok["Location"]).content.decode()
    assert "aws ec2 accept-vpc-peering-connection --vpc-peering-connection-id pcx-0123456789abcdef0" in detail


def test_delete_from_the_console(member):
    peering = PeeringFactory(organization=member.deployment.organization, deployment=member.deployment,
                             status="active")
    response = member.post(reverse("console:peering-delete", args=[peering.id]))
    assert response.status_code == 302
    assert Peering.objects.get(pk=peering.id).status == "deleting"


def test_basic_deployment_has_no_wizard(member):
    basic = DeploymentFactory(organization=member.deployment.organization)
    section = member.get(reverse("console:deployment-peerings", args=[basic.id])).content.decode()
    assert "professional and flagship" in section


def test_ops_plays_the_customers_side_on_the_simulated_cloud(client, aws_cloud):
    from deployments.peering import customer_side

    client.force_login(operator_user("ops@example.com", "an-operator-passphrase"))
    deployment = DeploymentFactory(spec=Spec.objects.get(id="pro-1k"))
    vpc_id = customer_side.ensure_customer_vpc(CUSTOMER_ACCOUNT, "us-east-1", "10.20.0.0/16")
    peering = PeeringFactory(organization=deployment.organization, deployment=deployment, vpc_id=vpc_id,
                             cidr="10.20.0.0/16")
    worker.peering_converge_once(peering.id)
    changelist = "/ops/deployments/peering/"
    assert client.get(changelist + "?status__exact=pending_acceptance").status_code == 200
    response = client.post(changelist, {"action": "play_customer_side", "_selected_action": [peering.id]})
    assert response.status_code == 302
    worker.peering_converge_once(peering.id)
    assert Peering.objects.get(pk=peering.id).status == "active"
