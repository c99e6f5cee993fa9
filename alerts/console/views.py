"""Console pages for alerts: channels (with test sends), rules, incidents, the delivery log, and the metrics card
of a deployment. Thin like every console page: selectors read, services write."""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from typing import Any, ClassVar

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Case, IntegerField, Value, When
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.html import format_html

from alerts import selectors
from alerts.console import charts
from alerts.console import forms as alert_forms
from alerts.models import PUBLIC_METRICS, AlertChannel, AlertRule, ChannelType, Notification
from alerts.services import channels as channel_services
from alerts.services import rules as rule_services
from controlplane import errors
from deployments import facade as deployments_facade
from projects import facade as project_selectors
from projects.console.base import OrganizationConsoleView, OrganizationFormView
from projects.roles import Perm

WRITE_PERM = rule_services.WRITE_PERM
CHANNEL_PERM = channel_services.CHANNEL_PERM
PAGE_SIZE = 25
_PAGE_ERRORS = (errors.NotFound, errors.PermissionDenied)


def paginate(request: HttpRequest, queryset: Any) -> Any:
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


def target_summary(channel: AlertChannel, *, show_url: bool) -> str:
    """What the channel points at, never its secrets (a webhook's path and query are one, for readers)."""
    if channel.type == ChannelType.EMAIL:
        return ", ".join(channel.config.get("recipients", []))
    if channel.type == ChannelType.PAGERDUTY:
        return "Events API v2 routing key ••••"
    url = channel.config.get("url", "")
    return url if show_url or not url else selectors.webhook_url_masked(url)


def describe_channel(channel: AlertChannel, last: Notification | None, *, show_url: bool) -> AlertChannel:
    channel.target = target_summary(channel, show_url=show_url)
    channel.last_delivery = last
    return channel


class _ChannelMixin:
    principal: Any
    kwargs: dict[str, Any]

    @cached_property
    def channel(self) -> AlertChannel:
        channel = selectors.channel_list(principal=self.principal).filter(pk=self.kwargs["channel_id"]).first()
        if channel is None:
            raise errors.NotFound(f"No alert channel {self.kwargs['channel_id']}.")
        return channel


class _RuleMixin:
    principal: Any
    kwargs: dict[str, Any]

    @cached_property
    def rule(self) -> AlertRule:
        rule = selectors.rule_list(principal=self.principal).filter(pk=self.kwargs["rule_id"]).first()
        if rule is None:
            raise errors.NotFound(f"No alert rule {self.kwargs['rule_id']}.")
        return rule


# --- channels ---------------------------------------------------------------------------------------------
class ChannelListView(OrganizationConsoleView):
    template_name = "console/alerts/channels.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        channels = list(selectors.channel_list(principal=self.principal))
        recent = selectors.channel_last_deliveries(principal=self.principal, channel_ids=[c.id for c in channels])
        can_manage = channel_services.channel_can_manage(self.principal)
        rows = [describe_channel(channel, recent.get(channel.id), show_url=can_manage) for channel in channels]
        return self.render_page({"channels": rows, "can_write": can_manage})


class _ChannelFormView(OrganizationFormView):
    """The role is checked by the base; the form (with the URL in clear) is not shown to a limited principal
    either, whom the service would refuse on save."""

    template_name = "console/alerts/channel_form.html"
    form_class = alert_forms.ChannelForm
    required_perm = CHANNEL_PERM

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        channel_services.channel_require_manager(principal=self.principal)
        return super().get(request, *args, **kwargs)


class ChannelCreateView(_ChannelFormView):
    def form_valid(self, form: forms.Form) -> HttpResponse:
        channel, generated = channel_services.channel_create(principal=self.principal, name=form.cleaned_data["name"],
                                                             type=form.cleaned_data["type"], config=form.config())
        text = format_html("Channel {} created.", channel.name)
        if generated and generated.get("secret"):
            text = format_html('{} Its signing secret, shown only now: <code id="new-channel-secret">{}</code> '
                               '<button type="button" class="btn btn-small" data-copy-from="new-channel-secret">'
                               'Copy</button>', text, generated["secret"])
        messages.success(self.request, text)
        return redirect("console:alert-channels")


class ChannelEditView(_ChannelMixin, _ChannelFormView):
    def get_form_kwargs(self) -> dict[str, Any]:
        channel = self.channel
        initial = {"name": channel.name, "type": channel.type, "enabled": channel.enabled,
                   "recipients": "\n".join(channel.config.get("recipients", [])), "url": channel.config.get("url", "")}
        return {"editing": True, "initial": initial}

    def get_context(self, form: forms.Form) -> dict[str, Any]:
        return {"form": form, "channel": self.channel}

    def form_valid(self, form: forms.Form) -> HttpResponse:
        config = form.config()
        channel_services.channel_update(principal=self.principal, channel=self.channel, name=form.cleaned_data["name"],
                                        config=config or None, enabled=form.cleaned_data["enabled"])
        messages.success(self.request, f"Channel {form.cleaned_data['name']} saved.")
        return redirect("console:alert-channels")


class ChannelDeleteView(_ChannelMixin, OrganizationConsoleView):
    http_method_names: ClassVar[list[str]] = ["post"]
    required_perm = CHANNEL_PERM

    def post(self, request: HttpRequest, channel_id: str) -> HttpResponse:
        channel = self.channel
        channel_services.channel_delete(principal=self.principal, channel=channel)
        messages.success(request, f"Channel {channel.name} deleted.")
        return redirect("console:alert-channels")


class ChannelEnableView(_ChannelMixin, OrganizationConsoleView):
    """Re-enables a disabled channel (clearing why it was disabled, and starting a fresh failure window)."""

    http_method_names: ClassVar[list[str]] = ["post"]
    required_perm = CHANNEL_PERM

    def post(self, request: HttpRequest, channel_id: str) -> HttpResponse:
        channel = channel_services.channel_update(principal=self.principal, channel=self.channel, enabled=True)
        messages.success(request, f"Channel {channel.name} re-enabled. Send a test to check it works.")
        return redirect("console:alert-channels")


class ChannelTestView(_ChannelMixin, OrganizationConsoleView):
    """Sends a test notification now; with htmx the outcome replaces the button's result cell."""

    http_method_names: ClassVar[list[str]] = ["post"]
    required_perm = CHANNEL_PERM

    def post(self, request: HttpRequest, channel_id: str) -> HttpResponse:
        channel = self.channel
        notification = None
        try:
            notification, result = channel_services.channel_test(principal=self.principal, channel=channel)
        except _PAGE_ERRORS:
            raise
        except errors.DomainError as exc:
            outcome = {"delivered": False, "status_code": None, "error": exc.detail, "latency_ms": None}
        else:
            outcome = {"delivered": result.delivered, "status_code": result.status_code, "error": result.error,
                       "latency_ms": result.latency_ms}
        if self.is_htmx:
            # The row's "last delivery" cell is updated out of band: it would otherwise still say "Never used".
            return self.render_page({"outcome": outcome, "channel": channel, "notification": notification},
                                    template_name="console/alerts/_test_result.html")
        text = f"Test to {channel.name}: {'delivered' if outcome['delivered'] else 'failed'}"
        if outcome["status_code"]:
            text += f" (HTTP {outcome['status_code']}, {outcome['latency_ms']:.0f} ms)"
        if outcome["error"]:
            text += f" — {outcome['error']}"
        (messages.success if outcome["delivered"] else messages.error)(request, text)
        return redirect("console:alert-channels")


# --- rules ------------------------------------------------------------------------------------------------
class RuleListView(OrganizationConsoleView):
    template_name = "console/alerts/rules.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        rules = selectors.rule_list(principal=self.principal).select_related("project", "deployment")
        return self.render_page({"rules": rules, "can_write": self.principal.has(WRITE_PERM)})


class _RuleFormView(OrganizationFormView):
    template_name = "console/alerts/rule_form.html"
    form_class = alert_forms.RuleForm
    required_perm = WRITE_PERM
    editing = False

    def catalog(self) -> dict[str, Any]:
        return {
            "projects": list(project_selectors.project_list(principal=self.principal).order_by("name")),
            "deployments": list(deployments_facade.deployment_list(principal=self.principal)
                                .select_related("project").order_by("name")),
            "channels": list(selectors.channel_list(principal=self.principal)),
        }

    def get_form_kwargs(self) -> dict[str, Any]:
        return {**self.catalog(), "editing": self.editing}

    @staticmethod
    def values(form: forms.Form) -> dict[str, Any]:
        data = form.cleaned_data
        return {"name": data["name"], "metric": data["metric"], "operator": data["operator"],
                "threshold": data["threshold"], "duration_s": data["duration_s"], "severity": data["severity"],
                "channels": list(data["channels"]), "repeat_interval_s": data["repeat_interval_s"],
                "enabled": data["enabled"]}


class RuleCreateView(_RuleFormView):
    def get_form_kwargs(self) -> dict[str, Any]:
        return {**super().get_form_kwargs(), "initial": {"enabled": True}}

    def form_valid(self, form: forms.Form) -> HttpResponse:
        rule = rule_services.rule_create(principal=self.principal, project=form.cleaned_data["project"],
                                         deployment=form.cleaned_data["deployment"] or None, **self.values(form))
        messages.success(self.request, f"Rule {rule.name} created.")
        return redirect("console:alert-rules")


class RuleEditView(_RuleMixin, _RuleFormView):
    editing = True

    def get_form_kwargs(self) -> dict[str, Any]:
        rule = self.rule
        initial = {"name": rule.name, "project": rule.project_id, "deployment": rule.deployment_id or "",
                   "metric": rule.metric, "operator": rule.operator, "threshold": rule.threshold,
                   "duration_s": rule.duration_s, "severity": rule.severity,
                   "channels": [c.id for c in rule.channels.all()], "repeat_interval_s": rule.repeat_interval_s,
                   "enabled": rule.enabled}
        return {**super().get_form_kwargs(), "initial": initial}

    def get_context(self, form: forms.Form) -> dict[str, Any]:
        return {"form": form, "rule": self.rule, "preview": self.preview()}

    def preview(self) -> dict[str, Any] | None:
        """The watched metric over the last hour on the rule's deployment, or for a rule on a whole project on
        its first running deployment. Conditions (deployment failed, payment failed…) have no series to show."""
        rule = self.rule
        if rule.metric not in PUBLIC_METRICS:
            return {"condition": True, "metric": rule.metric}
        deployments = deployments_facade.deployment_list(principal=self.principal).filter(project_id=rule.project_id)
        deployment = (deployments.filter(pk=rule.deployment_id) if rule.deployment_id
                      else deployments.filter(status="running").order_by("created_at", "id")).first()
        if deployment is None:
            return None
        now = timezone.now()
        series = selectors.metric_series(deployment=deployment, metric=rule.metric, since=now - timedelta(hours=1),
                                         until=now, step_s=60)
        return {"deployment": deployment, "metric": rule.metric, "latest": series[-1]["value"] if series else None,
                "example": rule.deployment_id is None, "spark_points": sparkline(series), "spark_width": SPARK_WIDTH,
                "spark_height": SPARK_HEIGHT}

    def form_valid(self, form: forms.Form) -> HttpResponse:
        rule = rule_services.rule_update(principal=self.principal, rule=self.rule,
                                         deployment=form.cleaned_data["deployment"] or None, **self.values(form))
        messages.success(self.request, f"Rule {rule.name} saved.")
        return redirect("console:alert-rules")


class RuleDeleteView(_RuleMixin, OrganizationConsoleView):
    http_method_names: ClassVar[list[str]] = ["post"]
    required_perm = WRITE_PERM

    def post(self, request: HttpRequest, rule_id: str) -> HttpResponse:
        rule = self.rule
        rule_services.rule_delete(principal=self.principal, rule=rule)
        messages.success(request, f"Rule {rule.name} deleted.")
        return redirect("console:alert-rules")


# --- incidents and deliveries -----------------------------------------------------------------------------
class IncidentListView(OrganizationConsoleView):
    template_name = "console/alerts/incidents.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        incidents = (selectors.alert_list(principal=self.principal).select_related("rule", "deployment")
                     .annotate(firing_first=Case(When(state="firing", then=Value(0)), default=Value(1),
                                                 output_field=IntegerField()))
                     .order_by("firing_first", "-started_at", "id"))
        return self.render_page({"page": paginate(request, incidents)})


class DeliveryListView(OrganizationConsoleView):
    template_name = "console/alerts/deliveries.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        deliveries = selectors.notification_list(principal=self.principal).select_related("channel")
        return self.render_page({"page": paginate(request, deliveries)})


# --- the metrics card of a deployment ---------------------------------------------------------------------
SPARK_WIDTH, SPARK_HEIGHT = 240, 40


def sparkline(points: list[dict]) -> str:
    """SVG polyline points for the values, scaled into the sparkline's box."""
    if len(points) < 2:
        return ""
    values = [p["value"] for p in points]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = SPARK_WIDTH / (len(values) - 1)
    return " ".join(f"{i * step:.1f},{SPARK_HEIGHT - 2 - (v - low) / span * (SPARK_HEIGHT - 4):.1f}"
                    for i, v in enumerate(values))


#: The card's ranges: label → (span, bucket width in seconds); about 60–100 points each.
RANGES = {"1h": (timedelta(hours=1), 60), "6h": (timedelta(hours=6), 300), "24h": (timedelta(hours=24), 900)}


class DeploymentMetricsCardView(OrganizationConsoleView):
    """Loaded into the deployment page by htmx, and refreshed by it every 30 s: the latest values, a gauge of
    connections against the spec, and charts of connections and messages in/out over 1, 6 or 24 hours."""

    template_name = "console/alerts/_metrics_card.html"
    required_perm = Perm.READ

    def get(self, request: HttpRequest, deployment_id: str) -> HttpResponse:
        deployment = deployments_facade.deployment_get(principal=self.principal, deployment_id=deployment_id)
        range_key = request.GET.get("range") if request.GET.get("range") in RANGES else "1h"
        span, step = RANGES[range_key]
        current = selectors.metrics_current(deployment=deployment)
        values = current["metrics"]
        now = timezone.now()
        since = now - span

        def series(metric: str) -> list[dict]:
            return selectors.metric_series(deployment=deployment, metric=metric, since=since, until=now, step_s=step)

        max_connections = deployment.spec.max_connections
        connections = charts.line_chart(title=f"Connections, last {range_key}", unit="connections",
                                        series={"Connections": ("line-primary", series("connections"))},
                                        since=since, until=now, ceiling=float(max_connections))
        messages = charts.line_chart(title=f"Messages per second, last {range_key}", unit="messages/s",
                                     series={"In": ("line-primary", series("messages_in_rate")),
                                             "Out": ("line-secondary", series("messages_out_rate"))},
                                     since=since, until=now)
        pct = values.get("connections_pct")
        return self.render_page({
            "deployment": deployment, "at": current["at"], "metrics": values, "max_connections": max_connections,
            "running": deployment.status == "running", "gauge": charts.gauge(pct),
            "state": selectors.metrics_card_state(deployment=deployment, latest_at=current["at"]),
            # A day's axis crosses midnight: its ends carry the date.
            "axis_format": "j M H:i" if span >= timedelta(hours=24) else "H:i",
            "pct_bar": min(max(pct or 0.0, 0.0), 100.0), "charts": [connections, messages],
            "range_key": range_key, "ranges": list(RANGES),
        })
