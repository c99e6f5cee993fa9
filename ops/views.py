"""The fleet overview (``/ops/overview/``): what needs an operator now, composed from the apps' own selectors."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone

from alerts import facade as alerts
from billing import facade as billing
from controlplane import errors
from controlplane.admin import OpsPageView
from controlplane.selectors import task_failures_since
from controlplane.task_records import task_failure_retry
from deployments import facade as deployments
from projects.ops_admin import audit_staff_action

#: The rule evaluation runs every 30 s; a lag above this is shown as late.
EVALUATION_LAG_WARN_S = 120
#: A failure rate of finished deliveries above this is shown as high.
DELIVERY_FAILURE_RATE_WARN = 0.05
RECENT = timedelta(hours=1)
LIST_LIMIT = 100


class FleetOverviewView(OpsPageView):
    """Deployments by status, operations needing attention, task failures of the last hour (with retry), the
    alert evaluation's lag, the delivery failure rate and invoices by status. Lists are newest first."""

    template_name = "ops/overview.html"
    title = "Fleet overview"

    def get(self, request: HttpRequest) -> HttpResponse:
        now = timezone.now()
        since = now - RECENT
        lag = alerts.evaluation_lag_seconds(now=now)
        deliveries = alerts.delivery_stats(since=since)
        rate = deliveries.failure_rate
        return self.render_page({
            "now": now,
            "deployment_counts": deployments.deployment_status_counts(),
            "operations": deployments.operations_needing_attention(now=now, limit=LIST_LIMIT),
            "task_failures": list(task_failures_since(since=since)[:LIST_LIMIT]),
            "evaluation_lag": None if lag is None else round(lag),
            "evaluation_late": lag is None or lag > EVALUATION_LAG_WARN_S,
            "deliveries": deliveries,
            "delivery_failure_pct": None if rate is None else round(rate * 100, 1),
            "delivery_failures_high": rate is not None and rate > DELIVERY_FAILURE_RATE_WARN,
            "invoice_counts": billing.invoice_status_counts(),
        })


class TaskFailureRetryView(OpsPageView):
    """Re-enqueues a failed task by its registered name with its arguments; audited."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, failure_id: int) -> HttpResponse:
        try:
            with transaction.atomic():
                failure = task_failure_retry(failure_id=failure_id, actor_label=request.user.get_username())
                audit_staff_action(request, failure, "ops.task_failure.retry",
                                   {"task": failure.task_name, "args": failure.args, "kwargs": failure.kwargs})
        except errors.DomainError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, f"Queued {failure.task_name} again with the same arguments.")
        return redirect("ops-overview")
