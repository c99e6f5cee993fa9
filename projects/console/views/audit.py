"""Console pages that read what happened: the audit log, and the embedded default's mail outbox."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from controlplane import errors
from projects import selectors
from projects.console.base import (
    OrganizationConsoleView,
)
from projects.filters import AuditEventFilter
from projects.roles import Perm

AUDIT_PAGE_SIZE = 50
AUDIT_MAX_PAGE = 1_000_000
# The filter set is shared with the API, whose labels are generated from lookups; people read these.
AUDIT_FILTER_FIELDS = {
    "actor": ("Actor", "email or usr_… / key_…", "search"),
    "action": ("Action", "project or project.create", "search"),
    "target": ("Target", "prj_…, key_…", "search"),
    "since": ("Since (UTC)", "", "datetime-local"),
}


class AuditLogView(OrganizationConsoleView):
    template_name = "console/audit.html"
    required_perm = Perm.AUDIT_READ

    def get(self, request: HttpRequest) -> HttpResponse:
        events = selectors.audit_event_list(principal=self.principal).order_by("-created_at", "-id")
        event_filter = AuditEventFilter(request.GET, queryset=events)
        self._label_filter_form(event_filter.form)
        page = self._page_number(request)
        offset = (page - 1) * AUDIT_PAGE_SIZE
        rows = list(event_filter.qs[offset:offset + AUDIT_PAGE_SIZE + 1]) if event_filter.is_valid() else []
        return self.render_page({
            "filter_form": event_filter.form,
            "events": rows[:AUDIT_PAGE_SIZE],
            "filtered": any(request.GET.get(name) for name in event_filter.form.fields),
            "older_query": self._query_for_page(request, page + 1) if len(rows) > AUDIT_PAGE_SIZE else None,
            "newer_query": self._query_for_page(request, page - 1) if page > 1 else None,
            # A page past the last (an old link, a hand-edited number) leads back rather than looking empty.
            "first_query": self._query_for_page(request, 1) if page > 1 and not rows else None,
        })

    @staticmethod
    def _label_filter_form(form: forms.Form) -> None:
        for name, (label, placeholder, input_type) in AUDIT_FILTER_FIELDS.items():
            field = form.fields[name]
            field.label = label
            field.widget.input_type = input_type
            if placeholder:
                field.widget.attrs["placeholder"] = placeholder

    @staticmethod
    def _page_number(request: HttpRequest) -> int:
        # Capped: an offset past a 64-bit integer made the database refuse the query (a 500).
        try:
            return min(max(1, int(request.GET.get("page", "1"))), AUDIT_MAX_PAGE)
        except ValueError:
            return 1

    @staticmethod
    def _query_for_page(request: HttpRequest, page: int) -> str:
        query = request.GET.copy()
        query["page"] = str(page)
        return query.urlencode()


class OutboxView(OrganizationConsoleView):
    """What the embedded default would have mailed to this organization's people; there is no outbox anywhere
    else. Operators read all of it on the ops site."""

    template_name = "console/outbox.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        if not settings.EMBEDDED:
            raise errors.NotFound("The mail outbox exists only in the embedded default.")
        context = {"outbox": selectors.outbox_list(principal=self.principal)}
        if self.is_htmx:
            return self.render_page(context, template_name="console/_outbox_list.html")
        return self.render_page(context)
