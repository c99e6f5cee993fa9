"""The outermost middleware: how errors leave, whichever layer raised them."""

from __future__ import annotations

import sys
from collections.abc import Callable

from django.conf import settings
from django.core.signals import got_request_exception
from django.http import HttpRequest, HttpResponse

from controlplane.api.problems import PROBLEM_CONTENT_TYPE, problem_json_response
from controlplane.db import is_database_busy
from controlplane.error_pages import busy_response, error_response, is_api

#: Headers of Django's own error responses that still mean something in the problem that replaces them.
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


def _remember_exception(sender: object, request: HttpRequest | None = None, **kwargs: object) -> None:
    # Django turns an exception into a 500 (or, in DEBUG, its debug page) deep inside the middleware chain and
    # sends this signal while handling it: the only place the exception itself can still be seen.
    if request is not None:
        # A note for process_response on this request only; HttpRequest declares no such attribute.
        request.unhandled_exception = sys.exc_info()[1]  # type: ignore[attr-defined]


class ErrorResponseMiddleware:
    """Under /api/ every error is problem+json, in every profile: Django's debug 404 and 500 pages, its plain
    400/403/405 answers and its CSRF page are replaced, and a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is a 413
    before anything reads it. Anywhere, a write that found the database locked is a 503 with ``Retry-After``
    (never a 500)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        got_request_exception.connect(_remember_exception, dispatch_uid="controlplane.remember_exception")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        api = is_api(request)
        if api and _body_too_large(request):
            return problem_json_response(
                413, f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")
        response = self.get_response(request)
        if response.status_code >= 500 and is_database_busy(getattr(request, "unhandled_exception", None)):
            return busy_response(request)
        if response.status_code < 400:
            return response
        kept = {name: response[name] for name in _KEPT_HEADERS if response.has_header(name)}
        if api and not response.get("Content-Type", "").startswith(PROBLEM_CONTENT_TYPE):
            return problem_json_response(response.status_code, headers=kept)
        if (not api and not request.headers.get("HX-Request") and not getattr(response, "streaming", False)
                and not response.content):
            # Django's bare answers (a 405 for an action opened with GET) have no body: browsers show their own
            # error screen instead of the console's. (An htmx answer's empty body is on purpose: its headers,
            # such as HX-Redirect, are what it says.)
            return error_response(request, response.status_code, headers=kept)
        return response


def _body_too_large(request: HttpRequest) -> bool:
    limit: int | None = settings.DATA_UPLOAD_MAX_MEMORY_SIZE  # None turns the check off
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    return limit is not None and length > limit
