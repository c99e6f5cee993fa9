"""What a log line or an outbound call knows about the work it belongs to: the request id, the organization, the
deployment and the Celery task, held in context variables (one set per thread or asyncio task).

- A web request takes its id from ``X-Request-ID`` when the value is sane (a proxy or the client chose it, so a
  line in our logs can be matched with theirs), otherwise a new one; the response echoes it.
- A task published while a request id is bound carries it in its message headers (``before_task_publish``), and
  the worker binds it again around the task (``task_prerun``/``task_postrun``), so a request and the tasks it
  started share one id. Tasks take ids as arguments: a ``dep_…`` or ``org_…`` argument names the deployment or
  organization of the task's log lines.
- ``outbound_headers()`` gives ``X-Request-ID`` to the calls the control plane makes (webhooks, PagerDuty).
- ``ContextFilter`` (LOGGING) puts the four fields on every record, empty when unknown.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterable
from contextvars import ContextVar, Token
from typing import Any

from django.http import HttpRequest, HttpResponse

HEADER = "X-Request-ID"
#: The Celery message header the request id travels in.
TASK_HEADER = "mqcloud_request_id"
FIELDS = ("request_id", "organization_id", "deployment_id", "task_id")
#: An id from outside is taken only if it looks like an id: no spaces or control characters that could forge a
#: log line, and short enough not to flood one.
_SANE_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{8,128}$")

_vars: dict[str, ContextVar[str]] = {name: ContextVar(f"mqcloud_{name}", default="") for name in FIELDS}


def new_request_id() -> str:
    return uuid.uuid4().hex


def sane_request_id(value: str | None) -> str | None:
    return value if value and _SANE_ID.match(value) else None


def current(name: str) -> str:
    return _vars[name].get()


def bind(**values: str) -> dict[str, Token[str]]:
    """Sets the given fields (names from ``FIELDS``); returns the tokens that ``unbind`` restores them with."""
    return {name: _vars[name].set(value or "") for name, value in values.items()}


def unbind(tokens: dict[str, Token[str]]) -> None:
    for name, token in tokens.items():
        _vars[name].reset(token)


def outbound_headers() -> dict[str, str]:
    """The headers an outbound call from the control plane adds: the request id, when one is bound."""
    request_id = current("request_id")
    return {HEADER: request_id} if request_id else {}


class ContextFilter(logging.Filter):
    """Adds ``request_id``, ``organization_id``, ``deployment_id`` and ``task_id`` to every record (the JSON
    formatter of the production profile writes them as fields)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name in FIELDS:
            if not getattr(record, name, ""):
                setattr(record, name, _vars[name].get())
        return True


def ids_in(values: Iterable[Any]) -> dict[str, str]:
    """The deployment and organization a task's arguments name (our ids carry their type as a prefix)."""
    found: dict[str, str] = {}
    for value in values:
        if isinstance(value, str):
            if value.startswith("dep_") and "deployment_id" not in found:
                found["deployment_id"] = value
            elif value.startswith("org_") and "organization_id" not in found:
                found["organization_id"] = value
    return found


class RequestIdMiddleware:
    """Binds the request id (and a ``dep_…`` URL argument as the deployment) for the request's duration and echoes
    the id in the response. Views bind the organization once they resolve it (``bind(organization_id=…)``)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = sane_request_id(request.headers.get(HEADER)) or new_request_id()
        tokens = bind(request_id=request_id, organization_id="", deployment_id="", task_id="")
        try:
            response = self.get_response(request)
        finally:
            unbind(tokens)
        response[HEADER] = request_id
        return response

    def process_view(self, request: HttpRequest, view_func: Callable[..., Any], view_args: tuple[Any, ...],
                     view_kwargs: dict[str, Any]) -> None:
        found = ids_in(view_kwargs.values())
        if "deployment_id" in found:
            # No token kept: the middleware's own reset above restores the variable when the request ends.
            bind(deployment_id=found["deployment_id"])


# --- Celery: the request id in the message, the task's fields around its run -------------------------------------
_task_tokens: dict[str, dict[str, Token[str]]] = {}


def on_before_task_publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
    request_id = current("request_id")
    if request_id and headers is not None and TASK_HEADER not in headers:
        headers[TASK_HEADER] = request_id


def task_request_id(task: Any) -> str | None:
    """The request id a task's message carried (a custom header is an attribute of ``task.request``; older
    protocols kept them under ``headers``)."""
    request = getattr(task, "request", None)
    value = getattr(request, TASK_HEADER, None) or (getattr(request, "headers", None) or {}).get(TASK_HEADER)
    return sane_request_id(value)


def on_task_prerun(task_id: str = "", task: Any = None, args: Any = None, kwargs: Any = None, **_: Any) -> None:
    # An eager task runs inside its caller: it keeps the caller's request id when its message had none.
    request_id = task_request_id(task) or current("request_id") or new_request_id()
    found = ids_in([*(args or ()), *(kwargs or {}).values()])
    _task_tokens[task_id] = bind(request_id=request_id, task_id=task_id,
                                 deployment_id=found.get("deployment_id", current("deployment_id")),
                                 organization_id=found.get("organization_id", current("organization_id")))


def on_task_postrun(task_id: str = "", **_: Any) -> None:
    tokens = _task_tokens.pop(task_id, None)
    if tokens is not None:
        unbind(tokens)
