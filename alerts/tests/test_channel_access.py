"""Who may change the organization-wide alert channels, and who reads a webhook's secret URL."""

from __future__ import annotations

import pytest

from alerts.models import AlertChannel, Notification
from alerts.tests.factories import AlertChannelFactory
from projects.models import AuditEvent
from projects.roles import Role
from projects.tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory, make_api_key
from tests.support import console_url

pytestmark = pytest.mark.django_db

HOOK = "https://hooks.example.com/services/T0AB12CD/B0EF34GH/x9Y8z7W6v5U4t3S2?token=abc123"
MASKED = "https://hooks.example.com/***"
CHANNELS = "/api/v1/alert-channels"

# (role, limited to a project, may change channels and read their URLs)
PRINCIPALS = [
    (Role.OWNER, False, True),
    (Role.ADMIN, False, True),
    (Role.OWNER, True, False),
    (Role.ADMIN, True, False),
    (Role.DEVELOPER, False, False),
    (Role.DEVELOPER, True, False),
    (Role.BILLING, False, False),
    (Role.VIEWER, False, False),
]


@pytest.fixture
def organization():
    return OrganizationFactory()


@pytest.fixture
def webhook(organization):
    return AlertChannelFactory(organization=organization, name="hook", type="webhook", config={"url": HOOK},
                               secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")


def key_client(make_client, organization, role, limited):
    projects = [ProjectFactory(organization=organization)] if limited else []
    _, secret = make_api_key(organization, role=role, projects=projects)
    return make_client(secret)


@pytest.mark.parametrize(("role", "limited", "manager"), PRINCIPALS)
def test_changing_a_channel_needs_an_unlimited_admin(make_client, organization, webhook, role, limited, manager):
    api = key_client(make_client, organization, role, limited)
    created = api.post(CHANNELS, {"name": "mail", "type": "email", "config": {"recipients": ["a@example.com"]}},
                       format="json")
    renamed = api.patch(f"{CHANNELS}/{webhook.id}", {"name": "renamed"}, format="json")
    disabled = api.patch(f"{CHANNELS}/{webhook.id}", {"enabled": False}, format="json")
    if manager:
        assert (created.status_code, renamed.status_code, disabled.status_code) == (201, 200, 200)
        assert api.delete(f"{CHANNELS}/{webhook.id}").status_code == 204
        return
    assert (created.status_code, renamed.status_code, disabled.status_code) == (403, 403, 403)
    # A test send is a write too: it posts to the customer's endpoint and lands in the delivery log.
    assert api.post(f"{CHANNELS}/{webhook.id}/test").status_code == 403
    assert api.delete(f"{CHANNELS}/{webhook.id}").status_code == 403
    channel = AlertChannel.objects.get(pk=webhook.pk)
    assert (channel.name, channel.enabled) == ("hook", True)
    assert AlertChannel.objects.filter(organization=organization).count() == 1
    assert not Notification.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="alert_channel.").exists()


@pytest.mark.parametrize(("role", "limited", "manager"), PRINCIPALS)
def test_webhook_urls_are_masked_for_whoever_cannot_change_them(make_client, organization, webhook, role, limited,
                                                                 manager):
    api = key_client(make_client, organization, role, limited)
    listed = api.get(CHANNELS).json()["results"][0]["config"]["url"]
    detail = api.get(f"{CHANNELS}/{webhook.id}").json()["config"]["url"]
    assert listed == detail == (HOOK if manager else MASKED)


def test_masked_urls_keep_only_scheme_host_and_port(make_client, organization):
    api = key_client(make_client, organization, Role.VIEWER, False)
    for url, masked in (("http://user:pw@hooks.example.com:8443/a?b=c#d", "http://hooks.example.com:8443/***"),
                        ("https://hooks.example.com", "https://hooks.example.com/***")):
        channel = AlertChannelFactory(organization=organization, type="webhook", config={"url": url})
        assert api.get(f"{CHANNELS}/{channel.id}").json()["config"]["url"] == masked


@pytest.mark.parametrize(("role", "limited"), [(Role.DEVELOPER, False), (Role.ADMIN, True), (Role.VIEWER, False)])
def test_console_channels_for_whoever_cannot_change_them(client, organization, webhook, role, limited):
    projects = [ProjectFactory(organization=organization)] if limited else []
    member = MembershipFactory(organization=organization, role=role, projects=projects)
    client.force_login(member.user)
    page = client.get(console_url("alert-channels")).content.decode()
    assert MASKED in page and "x9Y8z7W6v5U4t3S2" not in page
    assert "Send test" not in page and "Add channel" not in page
    assert client.get(console_url("alert-channel-edit", webhook.id)).status_code == 403
    email = {"name": "x", "type": "email", "recipients": "a@example.com"}
    for name, args, data in (("alert-channel-create", (), email),
                             ("alert-channel-edit", (webhook.id,), {"name": "y", "type": "webhook", "url": HOOK}),
                             ("alert-channel-test", (webhook.id,), {}),
                             ("alert-channel-enable", (webhook.id,), {}),
                             ("alert-channel-delete", (webhook.id,), {})):
        assert client.post(console_url(name, *args), data).status_code == 403, name
    assert AlertChannel.objects.get(pk=webhook.pk).name == "hook" and not Notification.objects.exists()


def test_console_channels_for_an_admin(client, organization, webhook):
    member = MembershipFactory(organization=organization, role=Role.ADMIN)
    client.force_login(member.user)
    page = client.get(console_url("alert-channels")).content.decode()
    assert HOOK.replace("&", "&amp;") in page or HOOK in page
    assert "Send test" in page and "Add channel" in page
