"""Console pages for deployments. Thin, like every console page: selectors read, services write.

The list and the detail page poll themselves with htmx only while something is in a transitional state,
so an idle console sends no requests.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from controlplane import errors
from controlplane.currency import format_rate
from deployments import http_auth, selectors, services
from deployments.console import forms as deployment_forms
from deployments.console.connect import ca_download_url, connect_snippets
from deployments.lifecycle import TRANSITIONAL
from deployments.maintenance import selectors as maintenance_selectors
from deployments.models import Deployment, DeploymentStatus, HttpAuthConfig, Spec, Tier
from deployments.tls.download import ca_pem_response
from deployments.upgrades import selectors as upgrade_selectors
from deployments.upgrades.plan import OPEN as OPEN_UPGRADES
from projects import facade as project_selectors
from projects.console.base import OrganizationConsoleView, OrganizationFormView
from projects.roles import Perm
from projects.tenancy import Principal

TIER_BLURBS = {
    Tier.BASIC: "A single broker node with a public endpoint.",
    Tier.PROFESSIONAL: "A dedicated multi-node cluster; VPC peering and private HTTP authentication.",
    Tier.FLAGSHIP: "Professional plus IoT-platform features; enabled for your organization by invitation.",
}
TIER_ORDER = {tier: position for position, tier in enumerate(Tier.values)}
# The order endpoints are listed in, with what each one is for.
ENDPOINT_KINDS = {"mqtt": "MQTT over TCP", "mqtts": "MQTT over TLS", "ws": "MQTT over WebSocket",
                  "wss": "MQTT over secure WebSocket"}
# An action refused for these reasons ends on an error page; any other refusal becomes a flash message.
_PAGE_ERRORS = (errors.NotFound, errors.PermissionDenied)


# --- what templates show beyond the models' own fields ----------------------------------------------
def describe_spec(spec: Spec, currency: str) -> Spec:
    spec.price = selectors.spec_prices(spec=spec, currency=currency)
    spec.vcpu = spec.cpu_millicores / 1000
    spec.memory_gib = spec.memory_mib / 1024
    return spec


def spec_label(spec: Spec) -> str:
    """Short enough for a narrow select: the name (which says the connections) and the hourly price."""
    if spec.price is None:
        return spec.name
    return f"{spec.name} · {format_rate(spec.price['hourly'], spec.price['currency'])}/h"


def endpoint_host(deployment: Deployment) -> str:
    address = next(iter(deployment.endpoints.values()), "") if deployment.endpoints else ""
    return address.rsplit(":", 1)[0]


def describe_deployment(deployment: Deployment) -> Deployment:
    deployment.is_transitional = deployment.status in TRANSITIONAL
    deployment.host = endpoint_host(deployment)
    return deployment


def tier_groups(specs: list[Spec]) -> list[dict[str, Any]]:
    groups: dict[str, list[Spec]] = {}
    for spec in sorted(specs, key=lambda spec: (TIER_ORDER.get(spec.tier, 99), spec.max_connections)):
        groups.setdefault(spec.tier, []).append(spec)
    return [{"tier": tier, "label": Tier(tier).label, "blurb": TIER_BLURBS.get(tier, ""), "specs": tier_specs}
            for tier, tier_specs in groups.items()]


class _DeploymentMixin:
    principal: Principal
    kwargs: dict[str, Any]

    @cached_property
    def deployment(self) -> Deployment:
        deployment = selectors.deployment_get(principal=self.principal, deployment_id=self.kwargs["deployment_id"])
        return describe_deployment(deployment)

    @property
    def currency(self) -> str:
        return self.principal.organization.currency

    def specs(self) -> list[Spec]:
        organization = self.principal.organization
        return [describe_spec(spec, self.currency)
                for spec in selectors.spec_list(flagship_enabled=organization.flagship_enabled)]


# --- list -------------------------------------------------------------------------------------------
class DeploymentListView(OrganizationConsoleView):
    template_name = "console/deployments/list.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        projects = list(project_selectors.project_list(principal=self.principal).order_by("name"))
        deployments = selectors.deployment_list(principal=self.principal).select_related("project")
        any_deployments = deployments.exists()
        filter_form = deployment_forms.DeploymentFilterForm(request.GET, projects=projects)
        if filter_form.is_valid():
            if filter_form.cleaned_data["project"]:
                deployments = deployments.filter(project_id=filter_form.cleaned_data["project"])
            if filter_form.cleaned_data["status"]:
                deployments = deployments.filter(status=filter_form.cleaned_data["status"])
        else:
            deployments = deployments.none()
        rows = [describe_deployment(deployment) for deployment in deployments.order_by("-created_at", "-id")]
        context = {
            "deployments": rows,
            "polling": any(row.is_transitional for row in rows),
            "poll_url": request.get_full_path(),
            "filter_form": filter_form,
            "filtered": any(request.GET.get(name) for name in filter_form.fields),
            "any_deployments": any_deployments,
            "can_create": self.principal.has(Perm.DEPLOYMENTS_WRITE) and bool(projects),
        }
        if self.is_htmx:
            return self.render_page(context, template_name="console/deployments/_rows.html")
        return self.render_page(context)


# --- create -----------------------------------------------------------------------------------------
class DeploymentCreateView(_DeploymentMixin, OrganizationFormView):
    template_name = "console/deployments/create.html"
    form_class = deployment_forms.DeploymentCreateForm
    required_perm = Perm.DEPLOYMENTS_WRITE

    @cached_property
    def catalog(self) -> dict[str, Any]:
        organization = self.principal.organization
        return {
            "projects": list(project_selectors.project_list(principal=self.principal).order_by("name")),
            "regions": list(selectors.region_list(site=organization.site)),
            "specs": self.specs(),
        }

    def get_form_kwargs(self) -> dict[str, Any]:
        initial = {}
        if self.request.GET.get("project"):
            initial["project"] = self.request.GET["project"]
        return {**self.catalog, "initial": initial}

    def get_context(self, form: forms.Form) -> dict[str, Any]:
        return {"form": form, "tier_groups": tier_groups(self.catalog["specs"]),
                "has_projects": bool(self.catalog["projects"]), "selected_spec": form["spec"].value(),
                "hours_per_month": selectors.HOURS_PER_MONTH}

    def form_valid(self, form: forms.Form) -> HttpResponse:
        organization = self.principal.organization
        data = form.cleaned_data
        deployment = services.deployment_create(
            principal=self.principal,
            project=project_selectors.project_get(principal=self.principal, project_id=data["project"]),
            name=data["name"],
            region=selectors.region_get(site=organization.site, region_id=data["region"]),
            spec=selectors.spec_get(flagship_enabled=organization.flagship_enabled, spec_id=data["spec"]),
        )
        messages.success(self.request, f"Provisioning started: {deployment.name} is being created in "
                                       f"{deployment.region.name}.")
        return redirect("console:deployment-detail", deployment.id)


# --- detail -----------------------------------------------------------------------------------------
def upgrade_context(deployment: Deployment) -> dict[str, Any]:
    """The deployment's EMQX version, its latest upgrade, and the form listing the versions it may go to."""
    targets = upgrade_selectors.targets_of(deployment=deployment)
    choices = [(v.version, f"EMQX {v.version}" + (" (current)" if v.status == "current" else "")) for v in targets]
    latest = upgrade_selectors.latest_upgrade(deployment=deployment)
    return {"broker_version": upgrade_selectors.version_get(version=deployment.broker_version),
            "broker_upgrade": latest, "upgrade_open": latest is not None and latest.status in OPEN_UPGRADES,
            "upgrade_form": deployment_forms.UpgradeForm(choices=choices) if choices else None}


class DeploymentDetailView(_DeploymentMixin, OrganizationConsoleView):
    template_name = "console/deployments/detail.html"

    def get(self, request: HttpRequest, deployment_id: str) -> HttpResponse:
        if self.is_htmx and request.GET.get("part") == "status":
            return self.status_part(request)
        deployment = self.deployment
        specs = self.specs()
        current = next((spec for spec in specs if spec.id == deployment.spec_id), None)
        target = next((spec for spec in specs if spec.id == deployment.target_spec_id), None)
        scale_choices = [(spec.id, spec_label(spec)) for spec in specs
                         if spec.tier == deployment.tier and spec.id != deployment.spec_id]
        if scale_choices:
            scale_choices.insert(0, ("", "Choose a size…"))
        events = selectors.deployment_event_list(principal=self.principal, deployment=deployment)
        endpoints = [{"kind": kind, "label": label, "address": deployment.endpoints[kind]}
                     for kind, label in ENDPOINT_KINDS.items() if deployment.endpoints.get(kind)]
        ca_pem_url = ca_download_url(deployment)
        return self.render_page({
            "deployment": deployment,
            "spec": current or describe_spec(deployment.spec, self.currency),
            "target_spec": target if deployment.target_spec_id != deployment.spec_id else None,
            "endpoints": endpoints,
            "ca_pem_url": ca_pem_url,
            "snippets": connect_snippets(deployment.endpoints, tls_ready=ca_pem_url is not None),
            "events": events.order_by("-created_at", "-id"),
            "scale_form": deployment_forms.ScaleForm(choices=scale_choices) if scale_choices else None,
            "is_running": deployment.status == DeploymentStatus.RUNNING,
            "is_stopped": deployment.status == DeploymentStatus.STOPPED,
            "is_failed": deployment.status == DeploymentStatus.FAILED,
            "http_auth": selectors.http_auth_list(principal=self.principal).filter(deployment=deployment).first(),
            "maintenance": maintenance_selectors.schedule_get(owner=deployment, count=1),
            **upgrade_context(deployment),
        })

    def status_part(self, request: HttpRequest) -> HttpResponse:
        """The polled status badge; once the status moved on, the whole page is out of date: reload it."""
        try:
            deployment = self.deployment
        except errors.NotFound:
            # Deleted while we watched.
            response = HttpResponse(status=204)
            response["HX-Redirect"] = reverse("console:deployments")
            return response
        if request.GET.get("shown") != deployment.status:
            response = HttpResponse(status=204)
            response["HX-Refresh"] = "true"
            return response
        return self.render_page({"deployment": deployment}, template_name="console/deployments/_status.html")


# --- actions ----------------------------------------------------------------------------------------
class DeploymentCaPemView(_DeploymentMixin, OrganizationConsoleView):
    """The CA certificates to verify ``mqtts``/``wss`` against, as a download (the same file as the API's)."""

    def get(self, request: HttpRequest, deployment_id: str) -> HttpResponse:
        return ca_pem_response(self.deployment)


class DeploymentActionView(_DeploymentMixin, OrganizationConsoleView):
    """A POST from the detail page that asks a service for one change, then goes back to the page.

    A refusal the person can act on (a 409 because the state moved on, a spec that does not fit) becomes
    a flash message on the detail page.
    """

    http_method_names: ClassVar[list[str]] = ["post"]
    required_perm = Perm.DEPLOYMENTS_WRITE

    def perform(self, deployment: Deployment) -> str:
        """Calls the service; returns the message to show."""
        raise NotImplementedError

    def post(self, request: HttpRequest, deployment_id: str) -> HttpResponse:
        deployment = self.deployment
        try:
            message = self.perform(deployment)
        except _PAGE_ERRORS:
            raise
        except errors.DomainError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, message)
        return redirect("console:deployment-detail", deployment.id)


class DeploymentStartView(DeploymentActionView):
    def perform(self, deployment: Deployment) -> str:
        services.deployment_start(principal=self.principal, deployment=deployment)
        return f"Starting {deployment.name}."


class DeploymentRetryView(DeploymentActionView):
    def perform(self, deployment: Deployment) -> str:
        deployment = services.deployment_retry(principal=self.principal, deployment=deployment)
        return f"Retrying: {deployment.name} is {deployment.status} again."


class DeploymentProtectionView(DeploymentActionView):
    def perform(self, deployment: Deployment) -> str:
        form = deployment_forms.ProtectionForm(self.request.POST)
        form.is_valid()  # a checkbox: absent means off
        protected = bool(form.cleaned_data.get("deletion_protection"))
        services.deployment_update(principal=self.principal, deployment=deployment, deletion_protection=protected)
        return "Deletion protection is on." if protected else "Deletion protection is off."


class DeploymentDeleteView(_DeploymentMixin, OrganizationFormView):
    template_name = "console/deployments/delete.html"
    form_class = deployment_forms.DeleteConfirmForm
    required_perm = Perm.DEPLOYMENTS_WRITE

    def get_form_kwargs(self) -> dict[str, Any]:
        return {"deployment_name": self.deployment.name}

    def get_context(self, form: forms.Form) -> dict[str, Any]:
        return {"form": form, "deployment": self.deployment}

    def form_valid(self, form: forms.Form) -> HttpResponse:
        services.deployment_delete(principal=self.principal, deployment=self.deployment)
        messages.success(self.request, f"Deleting {self.deployment.name}; it leaves the list once its resources "
                                       f"are gone.")
        return redirect("console:deployments")


# --- custom HTTP authentication ---------------------------------------------------------------------
_FORM_PREFIX = {http_auth.AUTHENTICATION: "authn", http_auth.AUTHORIZATION: "authz"}


def _form_field(service_field: str) -> str | None:
    """``authentication.url`` (a service's error key) → ``authn_url`` (the form's field)."""
    kind, _, name = service_field.partition(".")
    if kind in _FORM_PREFIX and name:
        return f"{_FORM_PREFIX[kind]}_{name}"
    return None


def _lines(values: dict[str, str], separator: str) -> str:
    return "\n".join(f"{name}{separator}{value}" for name, value in values.items())


class HttpAuthView(_DeploymentMixin, OrganizationConsoleView):
    """The deployment's HTTP authentication/ACL: the form, the test form and the last test results."""

    template_name = "console/deployments/http_auth.html"

    @cached_property
    def config(self) -> HttpAuthConfig | None:
        try:
            return selectors.http_auth_get(principal=self.principal, deployment=self.deployment)
        except errors.NotFound:
            return None

    def initial(self) -> dict[str, Any]:
        config = self.config
        if config is None:
            return {"enabled": True, "authn_method": "post", "authn_timeout_ms": 5000, "authz_method": "post",
                    "authz_timeout_ms": 5000,
                    "authn_params": "clientid=${clientid}\nusername=${username}\npassword=${password}",
                    "authz_params": "clientid=${clientid}\ntopic=${topic}\naction=${action}"}
        initial: dict[str, Any] = {"enabled": config.enabled}
        for kind, prefix in _FORM_PREFIX.items():
            spec = http_auth.request_spec(config, kind)
            if spec is None:
                initial.update({f"{prefix}_method": "post", f"{prefix}_timeout_ms": 5000})
                continue
            initial.update({f"{prefix}_method": spec.method, f"{prefix}_url": spec.url,
                            f"{prefix}_params": _lines(spec.params, "="), f"{prefix}_timeout_ms": spec.timeout_ms})
        initial["authz_enabled"] = bool(config.authz_url)
        return initial

    def context(self, form: forms.Form, test_form: forms.Form | None = None) -> dict[str, Any]:
        config = self.config
        header_names, last_tests = {}, []
        if config is not None:
            for kind, prefix in _FORM_PREFIX.items():
                spec = http_auth.request_spec(config, kind)
                header_names[prefix] = sorted(spec.headers) if spec else []
                result = config.last_tests.get(kind)
                if result:
                    last_tests.append({**result, "slow": (result.get("latency_ms") or 0) > http_auth.SLOW_MS})
        return {"deployment": self.deployment, "config": config, "form": form,
                "test_form": test_form or deployment_forms.HttpAuthTestForm(),
                "header_names": header_names, "last_tests": last_tests,
                "rollout": selectors.http_auth_rollout(deployment=self.deployment) if config is not None else None,
                "slow_ms": http_auth.SLOW_MS}

    def get(self, request: HttpRequest, deployment_id: str) -> HttpResponse:
        form = deployment_forms.HttpAuthForm(initial=self.initial())
        if not self.principal.has(Perm.DEPLOYMENTS_WRITE):
            for field in form.fields.values():  # shown to read, not offered to change
                field.disabled = True
        return self.render_page(self.context(form))

    def post(self, request: HttpRequest, deployment_id: str) -> HttpResponse:
        self.principal.require(Perm.DEPLOYMENTS_WRITE)
        form = deployment_forms.HttpAuthForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                http_auth.http_auth_put(
                    principal=self.principal, deployment=self.deployment, enabled=data["enabled"],
                    authentication=self._spec(http_auth.AUTHENTICATION, data),
                    authorization=self._spec(http_auth.AUTHORIZATION, data) if data["authz_enabled"] else None,
                )
            except _PAGE_ERRORS:
                raise
            except errors.DomainError as exc:
                placed = False
                for field, field_messages in exc.errors.items():
                    name = _form_field(field)
                    form.add_error(name if name in form.fields else None, list(field_messages))
                    placed = True
                if not placed:
                    form.add_error(None, exc.detail)
            else:
                messages.success(request, "HTTP authentication saved; the broker nodes restart one at a time to "
                                          "load it.")
                return redirect("console:deployment-http-auth", self.deployment.id)
        return self.render_page(self.context(form), status=400)

    def _spec(self, kind: str, data: dict[str, Any]) -> http_auth.HttpRequestSpec:
        prefix = _FORM_PREFIX[kind]
        headers = data[f"{prefix}_headers"]
        if not headers and not data[f"{prefix}_headers_clear"] and self.config is not None:
            stored = http_auth.request_spec(self.config, kind)
            headers = stored.headers if stored else {}  # write-only values: empty keeps what is stored
        return http_auth.HttpRequestSpec(method=data[f"{prefix}_method"], url=data[f"{prefix}_url"].strip(),
                                         headers=headers, params=data[f"{prefix}_params"],
                                         timeout_ms=data[f"{prefix}_timeout_ms"])


class HttpAuthTestView(HttpAuthView):
    """Runs the test call and shows the decision in a flash message; the result joins the last results."""

    http_method_names: ClassVar[list[str]] = ["post"]
    required_perm = Perm.DEPLOYMENTS_WRITE

    def post(self, request: HttpRequest, deployment_id: str) -> HttpResponse:
        test_form = deployment_forms.HttpAuthTestForm(request.POST)
        if not test_form.is_valid():
            form = deployment_forms.HttpAuthForm(initial=self.initial())
            return self.render_page(self.context(form, test_form), status=400)
        sample = dict(test_form.cleaned_data)
        kind = sample.pop("kind")
        try:
            result = http_auth.http_auth_test(principal=self.principal, deployment=self.deployment, kind=kind,
                                              sample=sample)
        except _PAGE_ERRORS:
            raise
        except errors.DomainError as exc:
            messages.error(request, exc.detail)
        else:
            status_code = result.status_code if result.status_code is not None else "no response"
            latency = f"{result.latency_ms:.0f} ms" if result.latency_ms is not None else "no latency"
            text = f"Test {kind}: {result.decision} (status {status_code}, {latency})"
            if result.error:
                text += f" — {result.error}"
            (messages.warning if result.decision != "allow" or result.slow else messages.success)(request, text)
        return redirect("console:deployment-http-auth", self.deployment.id)


class HttpAuthDeleteView(DeploymentActionView):
    def perform(self, deployment: Deployment) -> str:
        http_auth.http_auth_delete(principal=self.principal, deployment=deployment)
        return "HTTP authentication removed; clients are checked against the users under Access only."
