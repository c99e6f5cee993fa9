"""Error responses Django itself produces (unknown URLs, refused requests, crashes, CSRF failures, a busy
database): problem+json under /api/, the console's error page everywhere else.

Console error pages are rendered without the request's context processors, so they need no database: a 500 or
503 page must not fail the way the page it replaces did.
"""

from __future__ import annotations

from types import SimpleNamespace

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from controlplane.api.problems import problem_json_response

API_PREFIX = "/api/"
#: Seconds a client should wait after a 503 for a busy database (SQLite's writer lock is held for milliseconds).
BUSY_RETRY_AFTER_S = 2

_CONSOLE: dict[int, tuple[str, str]] = {
    400: ("Bad request", "The request could not be read. Go back and try again."),
    403: ("Permission denied", "You do not have access to this page."),
    404: ("Page not found", "There is no page at this address."),
    405: ("Not a page", "This address is an action: use its button in the console, not the address bar."),
    413: ("Request too large", "What you sent is larger than the server accepts."),
    500: ("Something went wrong", "The console failed to show this page; the error was logged."),
    503: ("Busy", "The server is busy right now. Wait a moment and try again."),
}


def is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX)


def console_error_page(status: int, detail: str | None = None) -> HttpResponse:
    title, default_detail = _CONSOLE.get(status, (str(status), ""))
    error = SimpleNamespace(status_code=status, title=title, detail=detail or default_detail)
    return HttpResponse(render_to_string("console/error.html", {"error": error}), status=status)


def error_response(request: HttpRequest, status: int, *, api_detail: str | None = None,
                   console_detail: str | None = None, headers: dict[str, str] | None = None) -> HttpResponse:
    if is_api(request):
        return problem_json_response(status, api_detail, headers)
    response = console_error_page(status, console_detail)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def busy_response(request: HttpRequest) -> HttpResponse:
    """A write that could not get the database in time (SQLite's "database is locked"): retry, not a bug."""
    return error_response(request, 503, api_detail="The database is busy; retry the request shortly.",
                          headers={"Retry-After": str(BUSY_RETRY_AFTER_S)})


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if isinstance(exception, RequestDataTooBig):
        return error_response(request, 413)
    return error_response(request, 400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_response(request, 403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    shown = request.path if request.path.isprintable() else "this path"
    return error_response(request, 404, api_detail=f"No endpoint at {shown}.")


def server_error(request: HttpRequest) -> HttpResponse:
    return error_response(request, 500)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return error_response(
        request, 403, api_detail=f"CSRF verification failed: {reason}. Send the X-CSRFToken header with session "
                                 "authentication, or use an API key.",
        console_detail="The form expired or was sent from another site. Reload the page and try again.")
