"""The connected clients tab of a deployment's Access area: who is connected now, asked of the broker, and
disconnecting one. The broker may not answer (stopped, restarting, unreachable): the page says so rather than
showing an empty table that would read as "nobody is connected"."""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from controlplane import errors
from deployments.console import access_forms
from deployments.console.access import AccessMixin
from deployments.mqtt_access import selectors, services
from projects.console.base import OrganizationConsoleView
from projects.roles import Perm

CLIENTS_SHOWN = 100


class ClientsView(AccessMixin, OrganizationConsoleView):
    template_name = "console/deployments/access/clients.html"
    access_tab = "clients"

    def get(self, request: HttpRequest, deployment_id: str) -> HttpResponse:
        deployment = self.deployment
        filter_form = access_forms.ClientFilterForm(request.GET)
        filters = filter_form.cleaned_data if filter_form.is_valid() else {"clientid": "", "username": ""}
        context: dict[str, Any] = {"filter_form": filter_form, "filtered": any(filters.values()),
                                   "limit": CLIENTS_SHOWN, "can_write": self.principal.has(Perm.DEPLOYMENTS_WRITE)}
        try:
            context["clients"] = selectors.connected_clients(deployment=deployment, limit=CLIENTS_SHOWN, **filters)
        except errors.Unavailable as exc:
            context["unavailable"] = exc.detail
            return self.render_page(self.access_context(**context), status=exc.status_code)
        return self.render_page(self.access_context(**context))


class ClientDisconnectView(AccessMixin, OrganizationConsoleView):
    http_method_names: ClassVar[list[str]] = ["post"]
    required_perm = Perm.DEPLOYMENTS_WRITE

    def post(self, request: HttpRequest, deployment_id: str) -> HttpResponse:
        deployment = self.deployment  # resolved first: another organization's deployment stays a 404
        form = access_forms.ClientDisconnectForm(request.POST)
        if not form.is_valid():
            raise errors.ValidationFailed("Say which client to disconnect.")
        clientid = form.cleaned_data["clientid"]
        try:
            services.client_disconnect(principal=self.principal, deployment=deployment, clientid=clientid)
        except errors.NotFound:
            messages.warning(request, f"{clientid} is not connected (any more).")
        except errors.Unavailable as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, f"{clientid} was disconnected; it may reconnect if its credentials still "
                                      "allow it.")
        return redirect("console:deployment-clients", deployment.id)
