"""What a change would do before it is asked for (issue 18, item 4): ``POST /deployments/{id}/preview``.

Read-only: nothing is written, no operation is started. For a change (``scale`` to a spec, ``switch_to_annual``,
``upgrade`` to a broker version)
it tells

- the client disconnect: ``none`` (nothing restarts), ``rolling`` (the nodes restart one at a time; each client
  reconnects once per node it was on, and the deployment keeps serving) or ``full_restart`` (the only node
  restarts: clients have no broker until it is back), with an estimate of ``NODE_RESTART_ESTIMATE_SECONDS`` per
  node that restarts;
- the price before and after (hourly, and a month of ``HOURS_PER_MONTH`` hours as the catalog shows it);
- the proration billing would charge (``hooks.change_quote``: deployments does not import billing);
- the deployment's maintenance window: whether now is inside it, and the next occurrence.

How a scale rolls is ``provisioning.desired_cluster_spec``: one node to one node is a surge (a second node with the
new size next to the old one, the old one replaced, back to one: every client moves twice, the broker never
stops); more nodes restart one at a time; a single node growing into several restarts with nobody to take its
clients.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone

from controlplane import errors
from deployments import hooks
from deployments.maintenance.planned import occurrences_for
from deployments.maintenance.validation import LENGTH_MAX_MINUTES
from deployments.models import Deployment, Spec
from deployments.models import DeploymentStatus as S
from deployments.selectors import HOURS_PER_YEAR, spec_prices
from deployments.upgrades.models import BrokerVersion
from deployments.upgrades.plan import refusal
from projects.tenancy import Principal

SCALE = "scale"
SWITCH_TO_ANNUAL = "switch_to_annual"
UPGRADE = "upgrade"
CHANGES = (SCALE, SWITCH_TO_ANNUAL, UPGRADE)
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Disconnect:
    kind: str  # none | rolling | full_restart
    estimated_seconds: int
    detail: str


@dataclass(frozen=True)
class ChangeQuote:
    """Billing's answer to ``hooks.change_quote``: the proration (None: nothing is charged for the change itself)
    and, where an annual term prices the hours, what they cost before or after (the term's price spread over a
    year's hours, ``annual_spread``); a price left None stays the catalog's hourly one."""

    proration: dict[str, Any] | None
    hourly_before: Decimal | None = None
    monthly_before: Decimal | None = None
    hourly_after: Decimal | None = None
    monthly_after: Decimal | None = None


@dataclass(frozen=True)
class Preview:
    change: str
    disconnect: Disconnect
    price: dict[str, Any]
    proration: dict[str, Any] | None
    window: dict[str, Any]
    spec_before: str
    spec_after: str

    def as_dict(self) -> dict[str, Any]:
        return {"change": self.change, "spec_before": self.spec_before, "spec_after": self.spec_after,
                "disconnect": {"kind": self.disconnect.kind, "estimated_seconds": self.disconnect.estimated_seconds,
                               "detail": self.disconnect.detail},
                "price": self.price, "proration": self.proration, "window": self.window}


def scale_disconnect(before: Spec, after: Spec) -> Disconnect:
    """How a scale from ``before`` to ``after`` reaches the clients (the rollout of ``provisioning``)."""
    per_node = settings.NODE_RESTART_ESTIMATE_SECONDS
    if before.replicas == 1 and after.replicas == 1:
        return Disconnect("rolling", 2 * per_node,
                          "A second node with the new size starts next to the old one, then the old one is replaced "
                          "and the deployment goes back to one node: each client reconnects up to twice, and a "
                          "node is always there to take it.")
    if before.replicas == 1:
        return Disconnect("full_restart", per_node,
                          f"The only node restarts with the new size (then {after.replicas} nodes): clients are "
                          "disconnected and cannot connect until it is back.")
    restarted = min(before.replicas, after.replicas)
    return Disconnect("rolling", restarted * per_node,
                      f"The {restarted} nodes restart one at a time: each client reconnects once, to another "
                      "node, and the deployment keeps serving.")


def _price(deployment: Deployment, after: Spec, currency: str) -> tuple[dict[str, Any], Decimal, Decimal]:
    before_prices = spec_prices(spec=deployment.spec, currency=currency)
    after_prices = spec_prices(spec=after, currency=currency)
    if before_prices is None or after_prices is None:
        raise errors.Conflict(f"The catalog has no price in {currency} for this change.")
    return ({"currency": currency, "hourly_before": before_prices["hourly"], "hourly_after": after_prices["hourly"],
             "monthly_before": before_prices["monthly_estimate"], "monthly_after": after_prices["monthly_estimate"]},
            after_prices["hourly"], after_prices["monthly_estimate"])


def window_now(deployment: Deployment, *, now: dt.datetime) -> dict[str, Any]:
    """Whether ``now`` is inside one of the deployment's window occurrences, and that one (or the next)."""
    # Look back one longest window: an occurrence that started before now may still be open.
    occurrences = occurrences_for(deployment, after=now - dt.timedelta(minutes=LENGTH_MAX_MINUTES), count=3)
    current = next((o for o in occurrences if o.start <= now < o.end), None)
    upcoming = next((o for o in occurrences if o.start > now), None)
    shown = current or upcoming
    return {"in_window_now": current is not None,
            "next_window_start": shown.start if shown else None, "next_window_end": shown.end if shown else None}


def upgrade_disconnect(spec: Spec) -> Disconnect:
    """How a version upgrade reaches the clients (``deployments.upgrades``): one node at a time, a single node
    with a surge node beside it first."""
    per_node = settings.NODE_RESTART_ESTIMATE_SECONDS
    if spec.replicas == 1:
        return Disconnect("rolling", 2 * per_node,
                          "A second node on the new version starts next to the old one, then the old one is "
                          "replaced: each client reconnects up to twice, and a node is always there to take it.")
    return Disconnect("rolling", spec.replicas * per_node,
                      f"The {spec.replicas} nodes move to the new version one at a time, each checked healthy "
                      "before the next: each client reconnects once, to another node (a node that does not come "
                      "back rolls the deployment back).")


def change_preview(*, principal: Principal, deployment: Deployment, change: str, spec: Spec | None = None,
                   version: str = "", now: dt.datetime | None = None) -> Preview:
    """What ``change`` would do to ``deployment`` now. Raises like the change itself would (a 400 for a spec it
    cannot scale to, a 409 for a deployment that cannot take it)."""
    now = now or timezone.now()
    currency = principal.organization.currency
    if change == UPGRADE:
        if not version:
            raise errors.field_invalid("version", "An upgrade preview needs the version to upgrade to.")
        reason = refusal(deployment.broker_version, version, list(BrokerVersion.objects.all()))
        if reason is not None:
            raise errors.field_invalid("version", reason)
        if deployment.status != S.RUNNING:
            raise errors.Conflict(f"Cannot upgrade a deployment that is {deployment.status} (it must be running).")
        disconnect = upgrade_disconnect(deployment.spec)
        after = deployment.spec
    elif change == SCALE:
        if spec is None:
            raise errors.field_invalid("spec", "A scale preview needs the spec to scale to.")
        if spec.tier != deployment.tier:
            raise errors.field_invalid("spec", f"Scaling stays within the {deployment.tier} tier; {spec.id} is "
                                               f"{spec.tier}.")
        if spec.id == deployment.spec_id:
            raise errors.field_invalid("spec", f"The deployment already runs {spec.id}.")
        if deployment.status != S.RUNNING:
            raise errors.Conflict(f"Cannot scale a deployment that is {deployment.status} (it must be running).")
        disconnect = scale_disconnect(deployment.spec, spec)
        after = spec
    elif change == SWITCH_TO_ANNUAL:
        disconnect = Disconnect("none", 0, "Only billing changes: nothing restarts.")
        after = deployment.spec
    else:
        raise errors.field_invalid("change", f"Unknown change {change!r}.")
    price, hourly_after, monthly_after = _price(deployment, after, currency)
    proration = None
    for quote in hooks.change_quote.collect(deployment=deployment, change=change, spec=after, currency=currency,
                                            now=now):
        proration = quote.proration if quote.proration is not None else proration
        for name in ("hourly_before", "monthly_before", "hourly_after", "monthly_after"):
            if getattr(quote, name) is not None:
                price[name] = getattr(quote, name)
    return Preview(change=change, disconnect=disconnect, price=price, proration=proration,
                   window=window_now(deployment, now=now), spec_before=deployment.spec_id, spec_after=after.id)


def annual_spread(annual: Decimal) -> tuple[Decimal, Decimal]:
    """An annual price as an hourly and a monthly equivalent (the hours of a year; a twelfth), for comparing."""
    hourly = (annual / HOURS_PER_YEAR).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
    return hourly, (annual / 12).quantize(CENT, rounding=ROUND_HALF_UP)


__all__ = ["CHANGES", "ChangeQuote", "Disconnect", "Preview", "annual_spread", "change_preview",
           "scale_disconnect", "upgrade_disconnect", "window_now"]
