"""Ops pages of the control plane itself (not of one app's models)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.template.response import TemplateResponse
from django.views import View

from controlplane.mail import outbox_messages

# The index lists the models; this adds the pages that are not one (the outbox).
admin.site.index_template = "ops/index.html"

OPS_PAGE_SIZE = 200


class OpsPageView(View):
    """An ops page that is not a model's list (e.g. the mail outbox): staff only, in the ops site's frame.

    Mount it with ``as_ops_view()``, which puts the admin's login and staff check in front of it.
    """

    template_name: str = ""
    title: str = ""
    http_method_names = ["get", "head", "options"]

    @classmethod
    def as_ops_view(cls, **initkwargs: Any) -> Callable[..., HttpResponseBase]:
        return admin.site.admin_view(cls.as_view(**initkwargs))

    def render_page(self, context: dict[str, Any]) -> HttpResponse:
        return TemplateResponse(self.request, self.template_name,
                                {**admin.site.each_context(self.request), "title": self.title, **context})


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
