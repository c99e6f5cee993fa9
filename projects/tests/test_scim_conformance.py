"""Issue 17, item 5: the SCIM endpoint checked by ``scim2-tester`` (RFC 7643/7644 conformance), through the real
``scim2-client`` over HTTP to a live server on loopback."""

from __future__ import annotations

import httpx2
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

from projects.roles import Role
from projects.services.scim import scim_token_create
from projects.tenancy import Principal
from projects.tests.factories import MembershipFactory, OrganizationFactory

pytestmark = pytest.mark.django_db(transaction=True)
FAILED = {Status.ERROR, Status.CRITICAL}


def test_scim2_tester_finds_no_failure(live_server):
    organization = OrganizationFactory()
    owner = MembershipFactory(organization=organization, role=Role.OWNER)
    _, token = scim_token_create(principal=Principal.for_membership(owner))
    with httpx2.Client(base_url=f"{live_server.url}/scim/v2/", trust_env=False, timeout=10,
                       headers={"Authorization": f"Bearer {token}"}) as http:
        results = check_server(SyncSCIMClient(http))
    assert results, "the checker ran nothing"
    failures = [result for result in results if result.status in FAILED]
    assert not failures, "\n".join(repr(result) for result in failures)
    # Every check ran: none was skipped for a missing prerequisite.
    assert not [result for result in results if result.status == Status.SKIPPED]
