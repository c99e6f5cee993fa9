"""Issue 17, item 4 (and the policy half of item 3): GET/PATCH /api/v1/organization/security, who may change it,
what it accepts, the lock-out guard, and the allowlist enforced on the API and the console (IPv4, IPv6, behind
NUM_PROXIES), refusals audited."""

from __future__ import annotations

import pytest
from django.test import Client

from projects.models import AuditEvent, Organization
from projects.roles import Role
from projects.tests.factories import PASSWORD, MembershipFactory, make_api_key

pytestmark = pytest.mark.django_db

URL = "/api/v1/organization/security"


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    return response.json()


@pytest.fixture
def owner():
    return MembershipFactory(role=Role.OWNER)


def test_defaults_say_nothing_is_restricted_and_show_the_callers_address(owner, session_client):
    body = session_client(owner.user).get(URL).json()
    assert body == {"ip_allowlist": [], "session_idle_timeout_minutes": None, "session_absolute_timeout_minutes": None,
                    "end_sessions_on_removal": False, "require_two_factor": False,
                    "your_ip": "127.0.0.1"}


@pytest.mark.parametrize(("role", "may_change"), [(Role.OWNER, True), (Role.ADMIN, True), (Role.DEVELOPER, False),
                                                  (Role.BILLING, False), (Role.VIEWER, False)])
@pytest.mark.parametrize("credential", ["session", "api_key"])
def test_owners_and_admins_change_the_policy_others_only_read_it(role, may_change, credential, session_client,
                                                                 make_client):
    member = MembershipFactory(role=role)
    if credential == "session":
        client = session_client(member.user)
    else:
        client = make_client(make_api_key(member.organization, role=role, created_by=member)[1])
    assert client.get(URL).status_code == 200
    response = client.patch(URL, {"session_idle_timeout_minutes": 30}, format="json")
    organization = Organization.objects.get(pk=member.organization_id)
    if may_change:
        assert response.status_code == 200, response.content
        assert organization.session_idle_timeout_minutes == 30
        event = AuditEvent.objects.get(organization=organization, action="organization.security_update")
        assert event.changes == {"session_idle_timeout_minutes": [None, 30]}
    else:
        _problem(response, 403)
        assert organization.session_idle_timeout_minutes is None
        assert not AuditEvent.objects.filter(action="organization.security_update").exists()


def test_another_organization_can_neither_read_nor_change_it(owner, session_client, make_client):
    stranger = MembershipFactory(role=Role.OWNER)
    header = {"HTTP_X_ORGANIZATION": owner.organization_id}
    for client in (session_client(stranger.user), make_client(make_api_key(stranger.organization)[1])):
        _problem(client.get(URL, **header), 404)
        _problem(client.patch(URL, {"ip_allowlist": ["0.0.0.0/0"]}, format="json", **header), 404)
        # Without the header each sees (and changes) its own organization only.
        assert client.patch(URL, {"end_sessions_on_removal": True}, format="json").status_code == 200
    assert Organization.objects.get(pk=owner.organization_id).end_sessions_on_removal is False
    assert Organization.objects.get(pk=stranger.organization_id).end_sessions_on_removal is True


def test_bad_entries_are_a_400_naming_each_and_change_nothing(owner, session_client):
    client = session_client(owner.user)
    body = _problem(client.patch(URL, {"ip_allowlist": ["127.0.0.1", "10.0.0.1/8", "nonsense"]}, format="json"), 400)
    assert body["errors"]["ip_allowlist"] == [
        "10.0.0.1/8 has host bits set; the network is 10.0.0.0/8.",
        "'nonsense' is not an IPv4 or IPv6 network in CIDR notation (such as 203.0.113.0/24)."]
    body = _problem(client.patch(URL, {"ip_allowlist": "127.0.0.1/32"}, format="json"), 400)
    assert "ip_allowlist" in body["errors"]  # a list, not a string
    for bad in (0, 4, 10**6):
        body = _problem(client.patch(URL, {"session_absolute_timeout_minutes": bad}, format="json"), 400)
        assert "Between 5 and 20160 minutes" in body["errors"]["session_absolute_timeout_minutes"][0]
    _problem(client.patch(URL, {"ip_allowlist": ["127.0.0.1"], "surprise": 1}, format="json"), 400)
    assert Organization.objects.get(pk=owner.organization_id).ip_allowlist == []


def test_the_lock_out_guard_refuses_a_list_without_the_callers_address(owner, session_client):
    client = session_client(owner.user)
    body = _problem(client.patch(URL, {"ip_allowlist": ["10.0.0.0/8", "2001:db8::/32"]}, format="json"), 400)
    assert body["errors"]["ip_allowlist"] == [
        "Your current address (127.0.0.1) is not in the list: saving it would lock you out. Add 127.0.0.1 (or a "
        "network holding it) to the list."]
    response = client.patch(URL, {"ip_allowlist": ["10.0.0.0/8", "127.0.0.0/8"]}, format="json")
    assert response.json()["ip_allowlist"] == ["10.0.0.0/8", "127.0.0.0/8"]
    # Empty means "no restriction": always allowed, whoever asks from wherever.
    assert client.patch(URL, {"ip_allowlist": []}, format="json").json()["ip_allowlist"] == []
    events = AuditEvent.objects.filter(action="organization.security_update").order_by("created_at")
    changes = [event.changes for event in events]
    assert changes == [{"ip_allowlist": [[], ["10.0.0.0/8", "127.0.0.0/8"]]},
                       {"ip_allowlist": [["10.0.0.0/8", "127.0.0.0/8"], []]}]


def test_ipv6_callers_are_guarded_and_matched_by_their_ipv6_network(owner, session_client, make_client):
    client = session_client(owner.user)
    v6 = {"REMOTE_ADDR": "2001:db8:7::42"}
    _problem(client.patch(URL, {"ip_allowlist": ["2001:db8:8::/48"]}, format="json", **v6), 400)
    assert client.patch(URL, {"ip_allowlist": ["2001:db8:7::/48"]}, format="json", **v6).status_code == 200
    assert client.get(URL, **v6).json()["your_ip"] == "2001:db8:7::42"
    api = make_client(make_api_key(owner.organization)[1])
    assert api.get("/api/v1/projects", REMOTE_ADDR="2001:db8:7:ffff::1").status_code == 200
    body = _problem(api.get("/api/v1/projects", REMOTE_ADDR="2001:db8:8::1"), 403)
    assert body["type"].endswith("ip-not-allowed") and "2001:db8:8::1" in body["detail"]
    _problem(api.get("/api/v1/projects"), 403)  # 127.0.0.1 is not on the list any more


def test_refusals_are_problem_json_403_and_audited_once_a_minute_per_address(owner, make_client):
    Organization.objects.filter(pk=owner.organization_id).update(ip_allowlist=["192.0.2.0/24"])
    api = make_client(make_api_key(owner.organization)[1])
    for _ in range(3):
        body = _problem(api.get("/api/v1/deployments"), 403)
        assert body["title"] == "Address not allowed"
        assert "your address (127.0.0.1) is not one of them" in body["detail"]
    _problem(api.get("/api/v1/deployments", REMOTE_ADDR="198.51.100.9"), 403)
    assert api.get("/api/v1/deployments", REMOTE_ADDR="192.0.2.10").status_code == 200
    refusals = AuditEvent.objects.filter(organization=owner.organization, action="organization.ip_refused")
    assert sorted(e.changes["ip"] for e in refusals) == ["127.0.0.1", "198.51.100.9"]
    assert {e.changes["surface"] for e in refusals} == {"api"}


def test_behind_proxies_the_client_address_is_the_one_the_trusted_proxy_saw(owner, make_client, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    Organization.objects.filter(pk=owner.organization_id).update(ip_allowlist=["203.0.113.0/24"])
    api = make_client(make_api_key(owner.organization)[1])
    # The proxy (REMOTE_ADDR) appends the address it saw; what the client wrote before it proves nothing.
    assert api.get("/api/v1/projects", HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.5").status_code == 200
    _problem(api.get("/api/v1/projects", HTTP_X_FORWARDED_FOR="203.0.113.5, 198.51.100.1"), 403)


def test_the_console_refuses_with_a_clear_page_and_the_login_itself_still_works(owner):
    Organization.objects.filter(pk=owner.organization_id).update(ip_allowlist=["192.0.2.0/24"])
    client = Client()
    response = client.post("/console/login", {"email": owner.user.email, "password": PASSWORD})
    assert response.status_code == 302
    response = client.get("/console/")
    assert response.status_code == 403
    page = response.content.decode()
    assert "Address not allowed" in page and "(127.0.0.1) is not one of them" in page
    assert owner.organization.name not in page.split("<main", 1)[0]  # no organization switcher or navigation
    assert client.get("/console/", REMOTE_ADDR="192.0.2.200").status_code == 200
    event = AuditEvent.objects.get(organization=owner.organization, action="organization.ip_refused")
    assert event.changes == {"ip": "127.0.0.1", "surface": "console"}


def test_the_console_form_shows_the_guard_next_to_the_field(owner):
    client = Client()
    client.force_login(owner.user)
    response = client.post("/console/settings/security", {"ip_allowlist": "10.0.0.0/8\n2001:db8::/32",
                                                           "session_idle_timeout_minutes": "15"})
    assert response.status_code == 400
    assert "Your current address (127.0.0.1) is not in the list" in response.content.decode()
    response = client.post("/console/settings/security", {"ip_allowlist": "10.0.0.0/8, 127.0.0.1",
                                                           "session_idle_timeout_minutes": "15",
                                                           "end_sessions_on_removal": "on"})
    assert response.status_code == 302
    organization = Organization.objects.get(pk=owner.organization_id)
    assert (organization.ip_allowlist, organization.session_idle_timeout_minutes,
            organization.session_absolute_timeout_minutes, organization.end_sessions_on_removal) == (
        ["10.0.0.0/8", "127.0.0.1/32"], 15, None, True)


def test_the_security_page_is_for_owners_and_admins(session_client):
    developer = MembershipFactory(role=Role.DEVELOPER)
    client = Client()
    client.force_login(developer.user)
    assert client.get("/console/settings/security").status_code == 403
    assert client.post("/console/settings/security", {"ip_allowlist": ""}).status_code == 403


def test_a_policy_change_reaches_cached_api_keys_at_once(owner, make_client):
    """API keys carry their organization in a per-process cache (projects.key_cache): a new allowlist must
    apply from the next request, not after the cache's minute."""
    api = make_client(make_api_key(owner.organization)[1])
    assert api.get("/api/v1/projects", REMOTE_ADDR="198.51.100.1").status_code == 200  # cached, no list yet
    assert api.patch(URL, {"ip_allowlist": ["127.0.0.1"]}, format="json").status_code == 200
    _problem(api.get("/api/v1/projects", REMOTE_ADDR="198.51.100.1"), 403)


def test_a_person_refused_by_one_organization_carries_on_in_another_that_allows_the_address(owner):
    """The allowlist guards its own organization's data, not the person: one in A (refusing this address) and B
    lands in B, can switch only to organizations that allow the address, and reaches their account pages."""
    Organization.objects.filter(pk=owner.organization_id).update(ip_allowlist=["192.0.2.0/24"])
    other = MembershipFactory(user=owner.user, role=Role.DEVELOPER)
    client = Client()
    assert client.post("/console/login", {"email": owner.user.email, "password": PASSWORD}).status_code == 302
    page = client.get("/console/")
    assert page.status_code == 200 and other.organization.name in page.content.decode()
    assert owner.organization.name in page.content.decode()  # told why it is not the organization shown
    assert client.get("/console/account/sessions").status_code == 200
    refused = client.post("/console/switch-organization", {"organization_id": owner.organization_id})
    assert refused.status_code in (302, 403)
    assert client.get("/console/").status_code == 200  # still in B


def test_behind_proxies_an_entry_that_is_no_address_is_unknown_never_the_proxys_own(owner, make_client, settings):
    """A proxy that writes `ip:port` is read without the port; one that writes `unknown` gives no address, which no
    allowlist lets in. Taking the proxy's own address instead would make every client one, and the lock-out guard
    would have the admin add it, opening the list to everybody."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    Organization.objects.filter(pk=owner.organization_id).update(ip_allowlist=["203.0.113.0/24", "127.0.0.1"])
    api = make_client(make_api_key(owner.organization)[1])  # REMOTE_ADDR 127.0.0.1: the proxy
    assert api.get("/api/v1/projects", HTTP_X_FORWARDED_FOR="203.0.113.5:51234").status_code == 200
    _problem(api.get("/api/v1/projects", HTTP_X_FORWARDED_FOR="unknown"), 403)
    organization = Organization.objects.get(pk=owner.organization_id)
    organization.ip_allowlist = ["2001:db8::/32"]
    organization.save()  # as the API's change does: cached keys see it at once
    assert api.get("/api/v1/projects", HTTP_X_FORWARDED_FOR="[2001:db8::7]:443").status_code == 200
