"""RFC 9457 problem details: every API error leaves through here."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import set_rollback

from controlplane import errors

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://mqcloud.dev/problems/"

_DRF_TITLES: dict[type[drf.APIException], tuple[str, str]] = {
    drf.ValidationError: ("Validation failed", "validation-failed"),
    drf.ParseError: ("Malformed request body", "malformed-request"),
    drf.UnsupportedMediaType: ("Unsupported media type", "unsupported-media-type"),
    drf.NotAuthenticated: ("Not authenticated", "not-authenticated"),
    drf.AuthenticationFailed: ("Not authenticated", "not-authenticated"),
    drf.PermissionDenied: ("Permission denied", "permission-denied"),
    drf.NotFound: ("Not found", "not-found"),
    drf.MethodNotAllowed: ("Method not allowed", "method-not-allowed"),
    drf.NotAcceptable: ("Not acceptable", "not-acceptable"),
    drf.Throttled: ("Too many requests", "rate-limited"),
}


def problem(status: int, title: str, detail: str, slug: str, errors_: dict[str, list[str]] | None = None) -> dict:
    body: dict[str, Any] = {"type": TYPE_BASE + slug, "title": title, "status": status, "detail": detail}
    if errors_:
        body["errors"] = errors_
    return body


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn DRF's nested error structures into ``{"field.sub": ["message"]}``."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors" and not prefix:
                name = "non_field_errors"
            for k, v in _flatten(value, name).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            out[prefix or "non_field_errors"] = [str(item) for item in detail]
        else:
            for index, item in enumerate(detail):
                for k, v in _flatten(item, f"{prefix}.{index}" if prefix else str(index)).items():
                    out.setdefault(k, []).extend(v)
    else:
        out[prefix or "non_field_errors"] = [str(detail)]
    return out


def _django_validation_errors(exc: DjangoValidationError) -> dict[str, list[str]]:
    if hasattr(exc, "error_dict"):
        return {field: [str(m) for e in errs for m in e.messages] for field, errs in exc.error_dict.items()}
    return {"non_field_errors": [str(m) for m in exc.messages]}


def problem_response(body: dict, headers: dict[str, str] | None = None) -> Response:
    response = Response(body, status=body["status"], content_type=PROBLEM_CONTENT_TYPE, headers=headers)
    return response


def problem_exception_handler(exc: Exception, context: dict) -> Response | None:
    headers: dict[str, str] = {}
    if isinstance(exc, errors.DomainError):
        body = problem(exc.status_code, exc.title, exc.detail, exc.type_slug, exc.errors)
        if isinstance(exc, errors.RateLimited | errors.Unavailable):
            headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, DjangoValidationError):
        errs = _django_validation_errors(exc)
        body = problem(400, "Validation failed", "The request has invalid fields.", "validation-failed", errs)
    elif isinstance(exc, Http404):
        body = problem(404, "Not found", "No such object.", "not-found")
    elif isinstance(exc, DjangoPermissionDenied):
        body = problem(403, "Permission denied", "You do not have permission for this action.", "permission-denied")
    elif isinstance(exc, drf.APIException):
        title, slug = _DRF_TITLES.get(type(exc), ("Error", "error"))
        for klass, value in _DRF_TITLES.items():
            if isinstance(exc, klass):
                title, slug = value
                break
        status = exc.status_code
        if isinstance(exc, drf.ValidationError):
            errs = _flatten(exc.detail)
            detail = "The request has invalid fields."
            if list(errs) == ["non_field_errors"] and len(errs["non_field_errors"]) == 1:
                detail = errs["non_field_errors"][0]
            body = problem(status, title, detail, slug, errs)
        else:
            detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
            body = problem(status, title, str(detail), slug)
        # DRF sets Throttled.wait in __init__; the stubs do not declare it.
        wait: float | None = exc.wait if isinstance(exc, drf.Throttled) else None  # type: ignore[attr-defined]
        if wait is not None:
            headers["Retry-After"] = str(max(1, int(wait + 0.999)))
        if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
            auth_header = _authenticate_header(context)
            if auth_header:
                headers["WWW-Authenticate"] = auth_header
            body["status"] = 401
    else:
        return None
    set_rollback()
    return problem_response(body, headers)


def _authenticate_header(context: dict) -> str | None:
    view = context.get("view")
    request = context.get("request")
    if view is None or request is None:
        return 'Bearer realm="api"'
    return view.get_authenticate_header(request) or 'Bearer realm="api"'


# --- errors raised outside DRF's views (URL resolution, middleware, Django's own refusals) under /api/ ---------
#: Titles and slugs of the statuses Django itself answers with; the same ones DRF's errors get above.
_STATUS_PROBLEMS: dict[int, tuple[str, str, str]] = {
    400: ("Bad request", "bad-request", "The request could not be read."),
    403: ("Permission denied", "permission-denied", "The request was refused."),
    404: ("Not found", "not-found", "No endpoint at this path."),
    405: ("Method not allowed", "method-not-allowed", "This endpoint does not take this method."),
    413: ("Request body too large", "request-too-large", "The request body is larger than the server accepts."),
    500: ("Internal server error", "server-error", "The server failed; the error was logged."),
    503: ("Service unavailable", "service-unavailable", "The server is busy; try again shortly."),
}


def problem_json_response(status: int, detail: str | None = None,
                          headers: dict[str, str] | None = None) -> JsonResponse:
    """A problem+json response for a bare HTTP status, outside DRF (which renders through the handler above)."""
    title, slug, default_detail = _STATUS_PROBLEMS.get(status) or (
        HTTPStatus(status).phrase, HTTPStatus(status).phrase.lower().replace(" ", "-"), HTTPStatus(status).phrase)
    response = JsonResponse(problem(status, title, detail or default_detail, slug), status=status,
                            content_type=PROBLEM_CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


@csrf_exempt  # it changes nothing; a script's POST to a wrong path must learn "no such endpoint", not "CSRF"
def api_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    # The path is echoed only when printable: a control character in it is no business of the client's.
    shown = request.path if request.path.isprintable() else "this path"
    return problem_json_response(404, f"No endpoint at {shown}.")
