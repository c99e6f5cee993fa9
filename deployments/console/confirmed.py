"""Deployment actions that disconnect clients or change the price (scale, stop): asked for on a page that says
what happens, then done. The page is a plain GET and its form a plain POST, so the step needs no JavaScript,
like the delete confirmation; prices are the catalog's (``selectors.spec_prices`` through ``describe_spec``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from controlplane import errors
from deployments import selectors, services
from deployments.console import forms as deployment_forms
from deployments.console.views import DeploymentActionView, describe_spec
from deployments.maintenance import selectors as maintenance_selectors
from deployments.models import Deployment, Spec
from deployments.preview import change_preview
from deployments.upgrades import selectors as upgrade_selectors
from deployments.upgrades import services as upgrade_services
from deployments.upgrades.models import UpgradeWhen


class ConfirmedDeploymentActionView(DeploymentActionView):
    """An action that disconnects clients or changes the price: the detail page's button GETs a page saying
    what will happen (so it works without JavaScript), whose form POSTs the action."""

    http_method_names: ClassVar[list[str]] = ["get", "post"]
    template_name = "console/deployments/confirm_action.html"

    def confirmation(self, deployment: Deployment) -> dict[str, Any]:
        """``title``, ``consequences`` (sentences), ``prices`` (label, now, after), ``button``, ``fields``."""
        raise NotImplementedError

    def current_spec(self, deployment: Deployment) -> Spec:
        return next((spec for spec in self.specs() if spec.id == deployment.spec_id), None) or describe_spec(
            deployment.spec, self.currency)

    def get(self, request: HttpRequest, deployment_id: str) -> HttpResponse:
        deployment = self.deployment
        try:
            confirmation = self.confirmation(deployment)
        except (errors.ValidationFailed, errors.Conflict) as exc:
            messages.error(request, exc.detail)
            return redirect("console:deployment-detail", deployment.id)
        return self.render_page({"deployment": deployment, "currency": self.currency, **confirmation})


class DeploymentScaleView(ConfirmedDeploymentActionView):
    def scale_form(self, data: Any) -> deployment_forms.ScaleForm:
        choices = [(spec.id, spec.name) for spec in self.specs() if spec.tier == self.deployment.tier]
        return deployment_forms.ScaleForm(data, choices=choices)

    def target(self, data: Any) -> Spec:
        form = self.scale_form(data)
        if not form.is_valid():
            raise errors.ValidationFailed(" ".join(form.errors["spec"]))
        return next(spec for spec in self.specs() if spec.id == form.cleaned_data["spec"])

    def confirmation(self, deployment: Deployment) -> dict[str, Any]:
        current, target = self.current_spec(deployment), self.target(self.request.GET)
        if target.id == deployment.spec_id:
            raise errors.ValidationFailed(f"{deployment.name} is already {target.name}.")
        # The API's preview (POST /deployments/{id}/preview): the same disconnect, prices, proration and window.
        spec = selectors.spec_get(flagship_enabled=self.principal.organization.flagship_enabled, spec_id=target.id)
        preview = change_preview(principal=self.principal, deployment=deployment, change="scale", spec=spec)
        price = preview.price
        return {
            "title": f"Scale {deployment.name} to {target.name}",
            "consequences": [
                preview.disconnect.detail,
                f"Clients are affected for about {_duration(preview.disconnect.estimated_seconds)} in all "
                "(clients with automatic reconnect carry on by themselves).",
                f"Capacity becomes {target.max_connections:,} connections and "
                f"{target.max_messages_per_second:,} messages per second.",
            ],
            "disconnect": preview.disconnect, "window": preview.window, "proration": preview.proration,
            "prices": [("Price per hour while running", price["hourly_before"], price["hourly_after"]),
                       ("Price per hour while stopped (storage)", current.price and current.price["stopped_hourly"],
                        target.price and target.price["stopped_hourly"])],
            "monthly": (price["monthly_before"], price["monthly_after"]),
            "from_label": current.name, "to_label": target.name,
            # Hourly prices are what an hourly deployment pays; billing prorates annual terms (billing's rule).
            "annual_note": "On annual billing the term's price applies instead, and the difference of the annual "
                           "prices is charged (or credited) prorated to the end of the term.",
            "button": f"Scale to {target.name}", "fields": {"spec": target.id},
        }

    def perform(self, deployment: Deployment) -> str:
        organization = self.principal.organization
        spec = selectors.spec_get(flagship_enabled=organization.flagship_enabled,
                                  spec_id=self.target(self.request.POST).id)
        services.deployment_scale(principal=self.principal, deployment=deployment, spec=spec)
        return f"Scaling {deployment.name} to {spec.name}; clients reconnect as nodes are replaced."


def _duration(seconds: int) -> str:
    minutes, rest = divmod(seconds, 60)
    if not minutes:
        return f"{rest} seconds"
    return f"{minutes} minute{'s' if minutes != 1 else ''}" + (f" {rest} seconds" if rest else "")


class DeploymentStopView(ConfirmedDeploymentActionView):
    def confirmation(self, deployment: Deployment) -> dict[str, Any]:
        spec = self.current_spec(deployment)
        return {
            "title": f"Stop {deployment.name}",
            "consequences": [
                "Every connected client is disconnected and the endpoints refuse new connections until you "
                "start the deployment again.",
                "Users, ACL rules and retained configuration are kept.",
                "A stopped deployment is still billed, at the storage rate.",
            ],
            "prices": [("Price per hour", spec.price and spec.price["hourly"],
                        spec.price and spec.price["stopped_hourly"])],
            "from_label": "Running", "to_label": "Stopped",
            "annual_note": "On annual billing the term is paid for: stopping neither ends nor shortens it.",
            "button": "Stop deployment", "fields": {}, "danger": True,
        }

    def perform(self, deployment: Deployment) -> str:
        services.deployment_stop(principal=self.principal, deployment=deployment)
        return f"Stopping {deployment.name}."


class DeploymentUpgradeView(ConfirmedDeploymentActionView):
    """The EMQX version upgrade: the detail page's form (version, now or at the next window) GETs this page."""

    def upgrade_form(self, data: Any) -> deployment_forms.UpgradeForm:
        choices = [(v.version, v.version) for v in upgrade_selectors.targets_of(deployment=self.deployment)]
        return deployment_forms.UpgradeForm(data, choices=choices)

    def chosen(self, data: Any) -> tuple[str, str]:
        form = self.upgrade_form(data)
        if not form.is_valid():
            raise errors.ValidationFailed(" ".join(" ".join(messages) for messages in form.errors.values()))
        return form.cleaned_data["version"], form.cleaned_data["when"]

    def confirmation(self, deployment: Deployment) -> dict[str, Any]:
        version, when = self.chosen(self.request.GET)
        spec = self.current_spec(deployment)
        schedule = maintenance_selectors.schedule_get(owner=deployment, count=1)
        if when == UpgradeWhen.NEXT_WINDOW and not schedule.occurrences:
            raise errors.ValidationFailed("The deployment has no maintenance window: set one, or upgrade now.")
        start = (f"at the next maintenance window, {schedule.occurrences[0].start:%a %d %b %Y, %H:%M} UTC"
                 if when == UpgradeWhen.NEXT_WINDOW else "now")
        return {
            "title": f"Upgrade {deployment.name} to EMQX {version}",
            "consequences": [
                f"Starts {start}. Nodes are replaced one at a time, each back and healthy before the next (a "
                f"single node gets a second one first): clients on the node being replaced reconnect.",
                f"If a node does not come back on {version}, every node returns to {deployment.broker_version} and "
                f"the upgrade is reported as failed with the reason.",
                "There is no downgrade once it succeeds.",
            ],
            "prices": [("Price per hour", spec.price and spec.price["hourly"], spec.price and spec.price["hourly"])],
            "from_label": f"EMQX {deployment.broker_version}", "to_label": f"EMQX {version}",
            "annual_note": "The version does not change the price.",
            "button": f"Upgrade to EMQX {version}", "fields": {"version": version, "when": when},
        }

    def perform(self, deployment: Deployment) -> str:
        version, when = self.chosen(self.request.POST)
        upgrade = upgrade_services.upgrade_request(principal=self.principal, deployment=deployment,
                                                   version=version, when=when)
        if upgrade.when == UpgradeWhen.NEXT_WINDOW:
            return (f"Upgrade of {deployment.name} to EMQX {version} scheduled for "
                    f"{upgrade.scheduled_for:%Y-%m-%d %H:%M} UTC.")
        return f"Upgrading {deployment.name} to EMQX {version}, one node at a time."
