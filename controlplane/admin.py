"""Ops pages of the control plane itself (not of one app's models)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.http import Http404, HttpRequest, HttpResponse

from controlplane.admin_base import OpsPageView
from controlplane.mail import outbox_messages

# The index lists the models; this adds the pages that are not one (the outbox).
admin.site.index_template = "ops/index.html"

OPS_PAGE_SIZE = 200


class OutboxOpsView(OpsPageView):
    """All mail of the embedded default, unmasked: operators are the only readers of other people's links."""

    template_name = "ops/outbox.html"
    title = "Mail outbox"

    def get(self, request: HttpRequest) -> HttpResponse:
        if not outbox_enabled():
            raise Http404("The mail outbox exists only in the embedded default.")
        return self.render_page({"outbox": outbox_messages(limit=OPS_PAGE_SIZE)})


def outbox_enabled() -> bool:
    return bool(settings.EMBEDDED)
