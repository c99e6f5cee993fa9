"""Issue 14, item 6: a failed or deleted peering frees its CIDR; a failed one can be retried (a state machine
transition recorded as an event, and audited); instructions never show commands with missing ids, and collapse
into a summary once the peering is active. AWS through moto over HTTP, like test_peering_aws."""

from __future__ import annotations

import pytest
from django.urls import reverse

from controlplane import errors
from deployments.models import Peering, PeeringEvent, Spec
from deployments.peering import customer_side, selectors, services, worker
from deployments.peering.instructions import instructions
from deployments.tests.conftest import CUSTOMER_ACCOUNT
from deployments.tests.factories import DeploymentFactory, PeeringFactory
from projects.models import AuditEvent
from projects.roles import Role
from projects.tenancy import Principal
from projects.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

CIDR = "10.20.0.0/16"
MISSING_VPC = "vpc-0123456789abcdef0"


@pytest.fixture
def principal() -> Principal:
    return Principal.for_membership(MembershipFactory(role=Role.DEVELOPER))


@pytest.fixture
def deployment(principal):
    return DeploymentFactory(organization=principal.organization, spec=Spec.objects.get(id="pro-1k"))


def ask(principal, deployment, vpc_id: str, *, cidr: str = CIDR) -> Peering:
    fields = {"account_id": CUSTOMER_ACCOUNT, "vpc_id": vpc_id, "region": "us-east-1", "cidr": cidr}
    return services.peering_create(principal=principal, deployment=deployment, provider="aws", fields=fields)


def converge(peering: Peering) -> Peering:
    worker.peering_converge_once(peering.id)
    return Peering.objects.get(pk=peering.id)


@pytest.mark.parametrize("status", ["failed", "deleted"])
def test_failed_and_deleted_peerings_free_their_cidr(deployment, status):
    PeeringFactory(organization=deployment.organization, deployment=deployment, cidr=CIDR, status=status)
    held = PeeringFactory(organization=deployment.organization, deployment=deployment, cidr="10.30.0.0/16",
                          status="pending_acceptance")
    assert selectors.reserved_cidrs(deployment=deployment) == [held.cidr]
    other = DeploymentFactory(organization=deployment.organization, spec=deployment.spec, region=deployment.region)
    assert selectors.region_routed_cidrs(deployment=other) == [held.cidr]


def test_asking_again_after_a_failure_does_not_overlap_itself(principal, deployment, aws_cloud):
    failed = converge(ask(principal, deployment, MISSING_VPC))
    assert failed.status == "failed" and "InvalidVpcID.NotFound" in failed.status_reason
    vpc_id = customer_side.ensure_customer_vpc(CUSTOMER_ACCOUNT, "us-east-1", CIDR)
    again = ask(principal, deployment, vpc_id)  # the same range: no "overlaps 10.20.0.0/16"
    assert converge(again).status == "pending_acceptance"
    # The failed one's range is free, but a live one's is not.
    with pytest.raises(errors.ValidationFailed, match="overlaps 10.20.0.0/16"):
        ask(principal, deployment, vpc_id, cidr="10.20.0.0/24")


def test_retry_asks_the_cloud_again_records_the_transition_and_audits_it(principal, deployment, aws_cloud):
    vpc_id = customer_side.ensure_customer_vpc(CUSTOMER_ACCOUNT, "us-east-1", CIDR)
    peering = converge(ask(principal, deployment, vpc_id))
    first_connection = peering.cloud_id
    customer_side.play(peering, accept=False)
    peering = converge(peering)
    assert peering.status == "failed" and peering.status_reason.startswith("AWS: rejected")

    retried = services.peering_retry(principal=principal, peering=peering)
    assert retried.status == "pending" and retried.status_reason == "" and retried.cloud_id == ""
    event = PeeringEvent.objects.filter(peering=peering).latest("created_at")
    assert (event.from_status, event.to_status, event.reason) == ("failed", "pending", "retried")
    assert event.actor_label == principal.actor_label
    assert event.details["failure"].startswith("AWS: rejected")
    audit = AuditEvent.objects.get(action="peering.retry")
    assert audit.target_id == peering.id and audit.changes["failure"].startswith("AWS: rejected")

    peering = converge(retried)
    assert peering.status == "pending_acceptance" and peering.cloud_id not in ("", first_connection)
    customer_side.play(peering)
    assert converge(peering).status == "active"


def test_only_a_failed_peering_can_be_retried(principal, deployment):
    peering = PeeringFactory(organization=principal.organization, deployment=deployment, status="active")
    with pytest.raises(errors.Conflict, match="Only a failed peering"):
        services.peering_retry(principal=principal, peering=peering)
    viewer = Principal.for_membership(MembershipFactory(role=Role.VIEWER, organization=principal.organization))
    peering.status = "failed"
    peering.save()
    with pytest.raises(errors.PermissionDenied):
        services.peering_retry(principal=viewer, peering=peering)


def test_a_retry_checks_the_range_again(principal, deployment):
    failed = PeeringFactory(organization=principal.organization, deployment=deployment, cidr=CIDR, status="failed")
    PeeringFactory(organization=principal.organization, deployment=deployment, cidr="10.20.128.0/17",
                   status="pending")  # requested after the first one failed, inside its range
    with pytest.raises(errors.ValidationFailed, match="overlaps 10.20.128.0/17") as caught:
        services.peering_retry(principal=principal, peering=failed)
    assert list(caught.value.errors) == ["cidr"]
    assert Peering.objects.get(pk=failed.pk).status == "failed"


def test_commands_with_missing_ids_are_not_shown(deployment):
    failed = PeeringFactory(organization=deployment.organization, deployment=deployment, status="failed",
                            cloud_id="", status_reason="AWS: InvalidVpcID.NotFound: no such VPC")
    shown = instructions(failed)
    assert shown["commands"] == []
    assert shown["steps"] and "retry" in shown["steps"][0]
    # Waiting for acceptance but the connection id is not known: neither command could run.
    waiting = PeeringFactory(organization=deployment.organization, deployment=deployment,
                             status="pending_acceptance", cloud_id="")
    assert instructions(waiting)["commands"] == []
    waiting.cloud_id = "pcx-0123456789abcdef0"
    assert [c.split(" --")[0] for c in instructions(waiting)["commands"]] == [
        "aws ec2 accept-vpc-peering-connection", "aws ec2 create-route"]


def test_console_offers_retry_for_a_failed_peering_and_a_summary_once_active(client, principal, deployment):
    client.force_login(principal.membership.user)
    failed = PeeringFactory(organization=principal.organization, deployment=deployment, cidr=CIDR, status="failed",
                            status_reason="AWS: rejected: no message")
    retry_url = reverse("console:peering-retry", args=[failed.id])
    detail = client.get(reverse("console:peering-detail", args=[failed.id])).content.decode()
    assert retry_url in detail and "accept-vpc-peering-connection" not in detail
    section = client.get(reverse("console:deployment-peerings", args=[deployment.id])).content.decode()
    assert retry_url in section
    response = client.post(retry_url)
    assert response.status_code == 302 and Peering.objects.get(pk=failed.id).status == "pending"

    Peering.objects.filter(pk=failed.id).update(status="active", cloud_id="pcx-0123456789abcdef0")
    detail = client.get(reverse("console:peering-detail", args=[failed.id])).content.decode()
    assert '<details class="peering-steps-done">' in detail and retry_url not in detail
    assert "Done: your network <code>10.20.0.0/16</code> reaches the brokers privately" in detail


def test_a_refused_retry_is_said_on_the_peering_page(client, principal, deployment):
    client.force_login(principal.membership.user)
    failed = PeeringFactory(organization=principal.organization, deployment=deployment, cidr=CIDR, status="failed")
    PeeringFactory(organization=principal.organization, deployment=deployment, cidr="10.20.0.0/24")
    response = client.post(reverse("console:peering-retry", args=[failed.id]), follow=True)
    assert "overlaps 10.20.0.0/24" in response.content.decode()
    assert Peering.objects.get(pk=failed.id).status == "failed"


def test_the_api_retries_a_failed_peering(make_client, principal, deployment):
    from projects.tests.factories import make_api_key

    _, secret = make_api_key(principal.organization)
    api = make_client(secret)
    failed = PeeringFactory(organization=principal.organization, deployment=deployment, cidr=CIDR, status="failed",
                            status_reason="AWS: rejected: no message")
    response = api.post(f"/api/v1/peerings/{failed.id}/retry")
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "pending" and response.json()["status_reason"] == ""
    assert api.post(f"/api/v1/peerings/{failed.id}/retry").status_code == 409  # pending now
    assert api.post("/api/v1/peerings").status_code == 405  # no create on the collection
