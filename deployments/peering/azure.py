"""The Azure peering worker: one converge step, through the one ``NetworkManagementClient`` factory.

Our side is a ``virtualNetworkPeerings`` entry on the region's platform VNet pointing at the customer's
VNet; Azure reports ``peeringState`` ``Initiated`` until the customer creates the reverse side, then
``Connected`` (and ``Disconnected`` once one side is removed).
"""

from __future__ import annotations

import re
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError, ServiceResponseError
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network.models import SubResource, VirtualNetworkPeering
from django.conf import settings
from django.utils import timezone

from controlplane.workers import Step
from deployments.models import Peering
from deployments.models import PeeringStatus as P
from deployments.peering.network import platform_network
from deployments.peering.steps import CloudError, advance, poll_delay, record_poll

VNET_ID = re.compile(r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Network/"
                     r"virtualNetworks/(?P<name>[^/]+)$", re.IGNORECASE)


class _StaticBearerPolicy(SansIOHTTPPolicy):
    """The simulated Resource Manager only: the SDK's bearer policy refuses plain http, so set the header here."""

    def on_request(self, request: Any) -> None:
        request.http_request.headers["Authorization"] = "Bearer simulated"


class _NoCredential:
    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken("simulated", 2**31 - 1)


def network_client(subscription_id: str) -> NetworkManagementClient:
    """The one factory. Production: the platform's service principal from settings, never a customer's."""
    options: dict[str, Any] = {"polling_interval": settings.PEERING_AZURE_POLLING_INTERVAL,
                               "retry_total": settings.PEERING_AZURE_RETRY_TOTAL}
    if settings.PEERING_AZURE_SIMULATED:
        return NetworkManagementClient(_NoCredential(), subscription_id, base_url=settings.PEERING_AZURE_ENDPOINT_URL,
                                       authentication_policy=_StaticBearerPolicy(), **options)
    from azure.identity import ClientSecretCredential

    credential = ClientSecretCredential(settings.PEERING_AZURE_TENANT_ID, settings.PEERING_AZURE_CLIENT_ID,
                                        settings.PEERING_AZURE_CLIENT_SECRET)
    return NetworkManagementClient(credential, subscription_id, base_url=settings.PEERING_AZURE_ENDPOINT_URL,
                                   **options)


def customer_vnet_id(peering: Peering) -> str:
    return (f"/subscriptions/{peering.subscription_id}/resourceGroups/{peering.resource_group}/providers/"
            f"Microsoft.Network/virtualNetworks/{peering.vnet_name}")


def our_peering_name(peering: Peering) -> str:
    return f"mqcloud-{peering.id}"


def platform_vnet(peering: Peering) -> re.Match:
    vnet_id = platform_network(peering.deployment.region).get("vnet_id", "")
    match = VNET_ID.match(vnet_id)
    if match is None:
        raise CloudError(f"The platform network of {peering.deployment.region_id} has no valid vnet_id.",
                         transient=False)
    return match


def classify(exc: Exception) -> CloudError:
    """Throttling, server errors and connection trouble are retried; anything else is the cloud saying no."""
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return CloudError(f"Azure unreachable: {exc}", transient=True)
    if isinstance(exc, HttpResponseError):
        status = exc.status_code or 0
        code = getattr(exc.error, "code", None) or getattr(exc, "reason", "") or str(status)
        message = getattr(exc.error, "message", None) or exc.message or str(exc)
        return CloudError(f"Azure: {code}: {message}", transient=status == 429 or status >= 500, code=str(code))
    raise exc


def step(peering: Peering) -> Step:
    try:
        return _step(peering)
    except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
        raise classify(exc) from exc


def _step(peering: Peering) -> Step:
    vnet = platform_vnet(peering)
    client = network_client(vnet["sub"])
    operations = client.virtual_network_peerings
    name = our_peering_name(peering)
    if peering.status == P.PENDING:
        result = operations.begin_create_or_update(vnet["rg"], vnet["name"], name, _desired(peering)).result()
        advance(peering, P.INITIATED, cloud_id=result.id or "", cloud_state=_text(result.peering_state),
                requested_at=timezone.now(), last_polled_at=timezone.now())
        return Step(again_in=0, note="created our side")
    if peering.status in (P.INITIATED, P.ACTIVE):
        try:
            current = operations.get(vnet["rg"], vnet["name"], name)
        except ResourceNotFoundError:
            if peering.status == P.ACTIVE:
                advance(peering, P.FAILED, reason="Our side of the VNet peering no longer exists in Azure; delete "
                                                  "this peering and create it again.")
                return Step(again_in=None, note="gone")
            # Lost (deleted by hand): put it back, idempotently.
            operations.begin_create_or_update(vnet["rg"], vnet["name"], name, _desired(peering)).result()
            return Step(again_in=poll_delay(peering), note="recreated our side")
        state = _text(current.peering_state)
        record_poll(peering, state)
        if _text(current.provisioning_state) == "Failed":
            advance(peering, P.FAILED, reason="Azure could not provision our side of the VNet peering.")
            return Step(again_in=None, note="failed")
        if state == "Connected":
            if peering.status == P.INITIATED:
                advance(peering, P.ACTIVE, cloud_state=state)
            return Step(again_in=None, note="connected")
        if state == "Disconnected":
            advance(peering, P.FAILED, reason="Azure reports the peering Disconnected: the customer's side was "
                                              "removed. Delete this peering and create it again.")
            return Step(again_in=None, note="disconnected")
        return Step(again_in=poll_delay(peering) if peering.status == P.INITIATED else None, note=state or "waiting")
    if peering.status == P.DELETING:
        try:
            operations.begin_delete(vnet["rg"], vnet["name"], name).result()
        except ResourceNotFoundError:
            pass
        advance(peering, P.DELETED, reason="deleted", cloud_state="")
        return Step(again_in=None, note="deleted")
    return Step(again_in=None, note=f"nothing to do while {peering.status}")


def _desired(peering: Peering) -> VirtualNetworkPeering:
    # A model object, not a dict: a dict body goes out unwrapped and the remote network comes back empty.
    return VirtualNetworkPeering(
        remote_virtual_network=SubResource(id=customer_vnet_id(peering)),
        allow_virtual_network_access=True,
        allow_forwarded_traffic=False,
        allow_gateway_transit=False,
        use_remote_gateways=False,
    )


def _text(value: object) -> str:
    """The SDK's enums are ``str`` subclasses whose ``str()`` is the member name; keep the wire value."""
    return str(getattr(value, "value", value) or "")
