"""Console pages for billing: account details, this month's usage, invoices, switching to annual.

Reads go through selectors, writes through services; the console base maps domain errors to pages.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone

from alerts import facade as alerts_facade
from billing import money, periods, selectors, stripe_gateway
from billing.console import forms as billing_forms
from billing.models import Budget, SubscriptionMode, VatStatus
from billing.services import invoicing
from billing.services.accounts import billing_account_update
from billing.services.budgets import budget_create, budget_delete, budget_update
from billing.services.cards import payment_method_setup_complete
from billing.services.subscriptions import subscription_annual_quote, subscription_switch_to_annual
from controlplane import errors
from deployments import facade as deployments_facade
from projects import facade as project_selectors
from projects.console.base import OrganizationConsoleView, OrganizationFormView
from projects.roles import Perm
from projects.tenancy import Principal

VAT_STATUS_HELP = {
    VatStatus.VALID: "Verified: EU business-to-business invoices use the reverse charge (no VAT charged).",
    VatStatus.INVALID: "The VAT number was rejected; VAT is charged at your country's rate.",
    VatStatus.UNCHECKED: "Not verified yet: VAT is charged until the number is verified; the reverse charge "
                         "applies once it is. Numbers are checked in the EU VIES service, and again automatically "
                         "while VIES or the member state is unavailable. (GB numbers are not in VIES.)",
}
# Without VIES_URL (the embedded default) nothing ever checks a number: say so rather than promise a check.
VIES_OFFLINE_HELP = ("Not verified: VAT number checks (EU VIES) are offline in this installation, so VAT is charged "
                     "at your country's rate; the reverse charge applies only to a verified number.")


class BillingAccountView(OrganizationFormView):
    """The organization's billing details; everyone with billing access reads, billing managers edit."""

    template_name = "console/billing/account.html"
    form_class = billing_forms.BillingAccountForm
    required_perm = Perm.BILLING_READ

    def get_form(self, data: Any = None) -> forms.Form:
        account = selectors.billing_account_get(principal=self.principal)
        initial = {name: getattr(account, name) for name in ("legal_name", "address", "country", "vat_number")}
        # Until the account has its own, the country given at signup is the likely answer.
        initial["country"] = account.country or self.principal.organization.country
        return self.form_class(data, initial=initial)

    def get_context(self, form: forms.Form) -> dict[str, Any]:
        account = selectors.billing_account_get(principal=self.principal)
        vies_offline = not settings.VIES_URL
        vat_help = (VIES_OFFLINE_HELP if vies_offline and account.vat_status == VatStatus.UNCHECKED
                    else VAT_STATUS_HELP.get(account.vat_status, ""))
        return {"form": form, "account": account, "organization": self.principal.organization,
                "vat_help": vat_help, "vies_offline": vies_offline,
                "can_manage": self.principal.has(Perm.BILLING_MANAGE),
                "stripe_enabled": stripe_gateway.is_configured(),
                "stripe_publishable_key": stripe_gateway.publishable_key() if stripe_gateway.is_configured() else "",
                "stripe_js_url": settings.STRIPE_JS_URL}

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.principal.require(Perm.BILLING_MANAGE)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: forms.Form) -> HttpResponse:
        billing_account_update(principal=self.principal, **form.cleaned_data)
        messages.success(self.request, "Billing details saved.")
        return redirect(reverse("console:billing-account"))


class PaymentMethodConfirmView(OrganizationConsoleView):
    """Stripe.js confirmed the SetupIntent in the browser; read it back from Stripe and make its card the default."""

    http_method_names: ClassVar[list[str]] = ["post"]
    required_perm = Perm.BILLING_MANAGE

    def post(self, request: HttpRequest) -> HttpResponse:
        setup_intent_id = request.POST.get("setup_intent", "")
        try:
            if not stripe_gateway.is_configured():
                raise stripe_gateway.StripeOffline(stripe_gateway.OFFLINE_DETAIL)
            if not setup_intent_id.startswith("seti_"):
                raise errors.ValidationFailed("The card setup did not complete.")
            account = payment_method_setup_complete(
                account=selectors.billing_account_get(principal=self.principal), setup_intent_id=setup_intent_id,
                principal=self.principal)
        except errors.PermissionDenied:
            raise
        except errors.DomainError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, f"Card {account.card_brand} •••• {account.card_last4} saved.")
        return redirect(reverse("console:billing-account") + "#payment-method")


class UsageView(OrganizationConsoleView):
    """This month's estimate, itemised: metered usage per deployment, then the annual terms and scale charges
    (or credits) the next invoice takes in, adding up to the estimate."""

    template_name = "console/billing/usage.html"
    required_perm = Perm.BILLING_READ

    def get(self, request: HttpRequest) -> HttpResponse:
        now = timezone.now().astimezone(UTC)
        since = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        summary = selectors.usage_summary(principal=self.principal, since=since, until=now, now=now)
        ids = [row["deployment"] for row in summary["deployments"]]
        names = dict(deployments_facade.deployment_list(principal=self.principal, include_deleted=True)
                     .filter(id__in=ids).values_list("id", "name"))
        for row in summary["deployments"]:
            row["name"] = names.get(row["deployment"], row["deployment"])
            for line in row["specs"]:
                line["hours"] = Decimal(line["seconds"]) / Decimal(3600)
        # Worded as the invoice line will be.
        charge_rows = [{"charge": charge, "description": invoicing.charge_description(charge)}
                       for charge in summary["charges"]]
        return self.render_page({"summary": summary, "since": since, "now": now, "charge_rows": charge_rows,
                                 "budgets": budget_rows(self.principal, now),
                                 "can_manage": self.principal.has(Perm.BILLING_MANAGE)})


def budget_rows(principal: Principal, now: datetime) -> list[dict[str, Any]]:
    """Each budget with this month's spend and how far along it is (capped at 100 for the bar's width)."""
    rows = []
    budgets = list(selectors.budget_list(principal=principal).select_related("project"))
    spent_by_budget = selectors.budgets_spent(budgets=budgets, now=now)
    for budget in budgets:
        spent = spent_by_budget[budget.pk]
        percent = int(spent * 100 / budget.amount)
        rows.append({"budget": budget, "spent": spent, "percent": percent, "bar": min(percent, 100),
                     "level": "over" if percent >= 100 else "high" if percent >= 80 else "ok",
                     "channels": list(budget.channels.all())})
    return rows


class _BudgetFormView(OrganizationFormView):
    template_name = "console/billing/budget_form.html"
    form_class = billing_forms.BudgetForm
    required_perm = Perm.BILLING_MANAGE
    editing = False

    def get_form(self, data: Any = None) -> forms.Form:
        principal = self.principal
        return self.form_class(data, projects=list(project_selectors.project_list(principal=principal)),
                               channels=list(alerts_facade.channel_list(principal=principal)),
                               currency=principal.organization.currency, editing=self.editing,
                               allow_organization=not principal.is_project_limited, **self.get_form_kwargs())


class BudgetCreateView(_BudgetFormView):
    def get_form_kwargs(self) -> dict[str, Any]:
        return {"initial": {"enabled": True}}

    def form_valid(self, form: forms.Form) -> HttpResponse:
        data = form.cleaned_data
        budget_create(principal=self.principal, project=data["project"] or None, amount=data["amount"],
                      channels=data["channels"], enabled=data["enabled"])
        messages.success(self.request, "Budget created.")
        return redirect(reverse("console:billing"))


class _BudgetMixin:
    principal: Principal
    kwargs: dict[str, Any]

    @property
    def budget(self) -> Budget:
        budget = selectors.budget_list(principal=self.principal).filter(pk=self.kwargs["budget_id"]).first()
        if budget is None:
            raise errors.NotFound(f"No budget {self.kwargs['budget_id']}.")
        return budget


class BudgetEditView(_BudgetMixin, _BudgetFormView):
    editing = True

    def get_form_kwargs(self) -> dict[str, Any]:
        budget = self.budget
        return {"initial": {"project": budget.project_id or "", "amount": budget.amount, "enabled": budget.enabled,
                            "channels": [c.id for c in budget.channels.all()]}}

    def get_context(self, form: forms.Form) -> dict[str, Any]:
        return {"form": form, "budget": self.budget}

    def form_valid(self, form: forms.Form) -> HttpResponse:
        data = form.cleaned_data
        budget_update(principal=self.principal, budget=self.budget, amount=data["amount"],
                      channels=data["channels"], enabled=data["enabled"])
        messages.success(self.request, "Budget saved.")
        return redirect(reverse("console:billing"))


class BudgetDeleteView(_BudgetMixin, OrganizationConsoleView):
    http_method_names: ClassVar[list[str]] = ["post"]
    required_perm = Perm.BILLING_MANAGE

    def post(self, request: HttpRequest, budget_id: str) -> HttpResponse:
        budget_delete(principal=self.principal, budget=self.budget)
        messages.success(request, "Budget deleted.")
        return redirect(reverse("console:billing"))


class InvoiceListView(OrganizationConsoleView):
    template_name = "console/billing/invoices.html"
    required_perm = Perm.BILLING_READ

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.render_page({"invoices": selectors.invoice_list(principal=self.principal)})


class InvoicePreviewView(OrganizationConsoleView):
    """The current month's invoice as the run on the 1st would make it so far: a dry run of the same code."""

    template_name = "console/billing/invoice_preview.html"
    required_perm = Perm.BILLING_READ

    def get(self, request: HttpRequest) -> HttpResponse:
        account = selectors.billing_account_get(principal=self.principal)
        now = timezone.now()
        return self.render_page({"draft": invoicing.invoice_preview(account=account, now=now), "now": now,
                                 "currency": self.principal.organization.currency,
                                 "issue_on": periods.month_after(now.date())})


class InvoiceDetailView(OrganizationConsoleView):
    """A clean HTML rendering of one invoice, with a link to its PDF."""

    template_name = "console/billing/invoice.html"
    required_perm = Perm.BILLING_READ

    def get(self, request: HttpRequest, invoice_id: str) -> HttpResponse:
        invoice = selectors.invoice_get(principal=self.principal, invoice_id=invoice_id)
        return self.render_page({"invoice": invoice, "lines": list(invoice.lines.all()),
                                 "seller_country": money.seller_country(invoice.organization.site),
                                 "pdf_url": f"/api/v1/invoices/{invoice.id}.pdf"})


class SwitchToAnnualView(OrganizationConsoleView):
    """GET: what the switch charges and that it cannot be undone (the subscription card's button leads here, so
    the step works without JavaScript); POST: the switch. A refusal (already annual: 409) becomes a message."""

    required_perm = Perm.BILLING_MANAGE
    template_name = "console/billing/switch_to_annual.html"

    def get(self, request: HttpRequest, deployment_id: str) -> HttpResponse:
        deployment = deployments_facade.deployment_get(principal=self.principal, deployment_id=deployment_id)
        if selectors.subscription_get(principal=self.principal, deployment=deployment).mode == SubscriptionMode.ANNUAL:
            messages.info(request, f"{deployment.name} is already on annual billing.")
            return redirect(reverse("console:deployment-detail", args=[deployment.id]))
        form = billing_forms.SwitchToAnnualForm(request.GET)
        renew = form.is_valid() and form.cleaned_data["renew"]
        quote = subscription_annual_quote(deployment=deployment, currency=self.principal.organization.currency)
        # The API's preview of the switch: no disconnect, and a month's price before and after.
        preview = deployments_facade.change_preview(principal=self.principal, deployment=deployment,
                                                    change="switch_to_annual")
        return self.render_page({"deployment": deployment, "quote": quote, "renew": renew, "preview": preview})

    def post(self, request: HttpRequest, deployment_id: str) -> HttpResponse:
        deployment = deployments_facade.deployment_get(principal=self.principal, deployment_id=deployment_id)
        form = billing_forms.SwitchToAnnualForm(request.POST)
        renew = form.is_valid() and form.cleaned_data["renew"]
        try:
            subscription_switch_to_annual(principal=self.principal, deployment=deployment, renew=renew)
        except (errors.NotFound, errors.PermissionDenied):
            raise
        except errors.DomainError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, f"{deployment.name} is now on annual billing.")
        return redirect(reverse("console:deployment-detail", args=[deployment.id]))
