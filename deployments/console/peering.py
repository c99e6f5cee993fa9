"""Console pages of VPC peering: the section on the deployment page (list with live status), the wizard,
a peering's page with the instructions, retry (of a failed one) and delete. Thin: selectors read, services write."""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from controlplane import errors
from deployments import selectors as deployment_selectors
from deployments.models import Deployment, Peering, Provider
from deployments.peering import selectors, services
from deployments.peering.instructions import instructions
from deployments.peering.lifecycle import TRANSITIONAL
from deployments.peering.network import platform_network, simulated_customer
from deployments.peering.services import PEERABLE_TIERS
from projects.console.base import OrganizationConsoleView, OrganizationFormView
from projects.roles import Perm

AWS_FIELDS = ("account_id", "vpc_id", "region")
AZURE_FIELDS = ("tenant_id", "subscription_id", "resource_group", "vnet_name")


class PeeringForm(forms.Form):
    """Shape only; the service checks formats, ranges and overlaps and its reasons land on the fields."""

    provider = forms.ChoiceField(choices=Provider.choices, widget=forms.HiddenInput)
    cidr = forms.CharField(label="Your network (CIDR)", max_length=43,
                           help_text="A private IPv4 range (10/8, 172.16/12, 192.168/16), /16 to /28, not "
                                     "overlapping the platform network or your other peerings.",
                           widget=forms.TextInput(attrs={"placeholder": "10.20.0.0/16", "spellcheck": "false"}))
    account_id = forms.CharField(label="AWS account id", max_length=64, required=False,
                                 widget=forms.TextInput(attrs={"placeholder": "your 12-digit account id",
                                                             "inputmode": "numeric"}),
                                 help_text="The account that owns the VPC (AWS console → account menu).")
    vpc_id = forms.CharField(label="VPC id", max_length=64, required=False,
                             widget=forms.TextInput(attrs={"placeholder": "vpc-…", "spellcheck": "false"}),
                             help_text="VPC console → Your VPCs: vpc- and 8 or 17 hexadecimal digits.")
    region = forms.CharField(label="VPC region", max_length=64, required=False,
                             widget=forms.TextInput(attrs={"placeholder": "us-east-1"}))
    tenant_id = forms.CharField(label="Tenant id", max_length=64, required=False)
    subscription_id = forms.CharField(label="Subscription id", max_length=64, required=False)
    resource_group = forms.CharField(label="Resource group", max_length=128, required=False)
    vnet_name = forms.CharField(label="VNet name", max_length=128, required=False)

    def provider_fields(self) -> list[forms.BoundField]:
        names = AWS_FIELDS if self["provider"].value() == Provider.AWS else AZURE_FIELDS
        return [self[name] for name in names]


def describe(peering: Peering) -> Peering:
    peering.is_transitional = peering.status in TRANSITIONAL
    return peering


class _PeeringMixin:
    kwargs: dict[str, Any]

    @cached_property
    def deployment(self) -> Deployment:
        return deployment_selectors.deployment_get(principal=self.principal, deployment_id=self.kwargs["deployment_id"])


class PeeringSectionView(_PeeringMixin, OrganizationConsoleView):
    """The "VPC peering" section of the deployment page, loaded (and, while something moves, polled) by htmx."""

    template_name = "console/deployments/_peerings.html"

    def get(self, request: HttpRequest, deployment_id: str) -> HttpResponse:
        deployment = self.deployment
        rows = [describe(p) for p in selectors.peering_list(principal=self.principal, deployment=deployment)
                .order_by("-created_at", "-id")]
        return self.render_page({
            "deployment": deployment, "peerings": rows, "polling": any(row.is_transitional for row in rows),
            "peerable": deployment.tier in PEERABLE_TIERS,
            "can_write": self.principal.has(Perm.DEPLOYMENTS_WRITE),
        })


class PeeringCreateView(_PeeringMixin, OrganizationFormView):
    template_name = "console/deployments/peering_create.html"
    form_class = PeeringForm
    required_perm = Perm.DEPLOYMENTS_WRITE

    @cached_property
    def simulated_customer(self) -> dict[str, str] | None:
        return simulated_customer(self.deployment.region)

    def get_form(self, data: Any = None) -> forms.Form:
        provider = self.deployment.region.provider
        initial = {"provider": provider}
        if provider == Provider.AWS:
            initial["region"] = self.deployment.region.code
        # A link, not a script: the one-click fill works without JavaScript too.
        if self.request.GET.get("fill") == "simulated" and self.simulated_customer:
            initial |= self.simulated_customer
        return self.form_class(data, initial=initial)

    def get_context(self, form: forms.Form) -> dict[str, Any]:
        network = platform_network(self.deployment.region)
        return {"form": form, "deployment": self.deployment, "platform_cidr": network.get("cidr", ""),
                "provider": self.deployment.region.provider, "peerable": self.deployment.tier in PEERABLE_TIERS,
                "simulated_customer": self.simulated_customer}

    def form_valid(self, form: forms.Form) -> HttpResponse:
        data = {k: v for k, v in form.cleaned_data.items() if v}
        provider = data.pop("provider")
        peering = services.peering_create(principal=self.principal, deployment=self.deployment, provider=provider,
                                          fields=data)
        messages.success(self.request, "Peering requested. Follow the instructions below once they appear.")
        return redirect("console:peering-detail", peering.id)


class PeeringDetailView(OrganizationConsoleView):
    template_name = "console/deployments/peering_detail.html"

    def get(self, request: HttpRequest, peering_id: str) -> HttpResponse:
        peering = describe(selectors.peering_get(principal=self.principal, peering_id=peering_id))
        if self.is_htmx and request.GET.get("shown") is not None and request.GET["shown"] != peering.status:
            response = HttpResponse(status=204)
            response["HX-Refresh"] = "true"
            return response
        return self.render_page({
            "peering": peering, "deployment": peering.deployment, "instructions": instructions(peering),
            "events": selectors.peering_event_list(principal=self.principal, peering=peering).order_by("created_at"),
            "can_write": self.principal.has(Perm.DEPLOYMENTS_WRITE),
        }, template_name="console/deployments/_peering_badge.html" if self.is_htmx else None)


class PeeringRetryView(OrganizationConsoleView):
    http_method_names: ClassVar[list[str]] = ["post"]
    required_perm = Perm.DEPLOYMENTS_WRITE

    def post(self, request: HttpRequest, peering_id: str) -> HttpResponse:
        peering = selectors.peering_get(principal=self.principal, peering_id=peering_id)
        try:
            services.peering_retry(principal=self.principal, peering=peering)
        except (errors.Conflict, errors.ValidationFailed) as exc:
            # A range taken meanwhile or a deployment going away: said on the page the button is on.
            messages.error(request, exc.detail)
        else:
            messages.success(request, f"Asking again for the peering with {peering.cidr}.")
        return redirect("console:peering-detail", peering.id)


class PeeringDeleteView(OrganizationConsoleView):
    http_method_names: ClassVar[list[str]] = ["post"]
    required_perm = Perm.DEPLOYMENTS_WRITE

    def post(self, request: HttpRequest, peering_id: str) -> HttpResponse:
        peering = selectors.peering_get(principal=self.principal, peering_id=peering_id)
        services.peering_delete(principal=self.principal, peering=peering)
        messages.success(request, f"Removing the peering with {peering.cidr}.")
        return redirect("console:deployment-detail", peering.deployment_id)
