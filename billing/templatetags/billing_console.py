"""``{% subscription_card deployment %}``: the deployment page's billing card (mode, term, switch to annual)."""

from __future__ import annotations

from django import template

from billing import selectors
from billing.console.forms import SwitchToAnnualForm
from billing.models import SubscriptionMode
from billing.services.subscriptions import subscription_annual_quote
from controlplane import errors
from projects.roles import Perm

register = template.Library()


@register.inclusion_tag("console/billing/_subscription_card.html", takes_context=True)
def subscription_card(context: template.Context, deployment) -> dict:
    request = context.get("request")
    principal = getattr(request, "principal", None)
    if principal is None or not principal.has(Perm.BILLING_READ):
        return {"show": False}
    subscription = selectors.subscription_get(principal=principal, deployment=deployment)
    try:
        quote = subscription_annual_quote(deployment=deployment, currency=principal.organization.currency)
    except errors.NotFound:  # no price in the organization's currency: nothing to offer
        quote = None
    return {"show": True, "deployment": deployment, "subscription": subscription, "quote": quote,
            "is_annual": subscription.mode == SubscriptionMode.ANNUAL,
            "can_switch": principal.has(Perm.BILLING_MANAGE) and deployment.status not in ("deleting", "deleted"),
            "form": SwitchToAnnualForm()}


@register.inclusion_tag("console/billing/_dunning_banner.html", takes_context=True)
def dunning_banner(context: template.Context) -> dict:
    """Warned / grace until / suspended, on every billing tab."""
    request = context.get("request")
    principal = getattr(request, "principal", None)
    if principal is None or not principal.has(Perm.BILLING_READ):
        return {"show": False}
    account = selectors.billing_account_get(principal=principal)
    if account.payment_failed_at is None and account.suspended_at is None:
        return {"show": False}
    return {"show": True, "account": account, "invoices": list(selectors.invoices_failed_unpaid(account=account)),
            "stop_on": selectors.dunning_stop_date(account)}
