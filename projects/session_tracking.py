"""The middleware that keeps each logged-in session's record (``ConsoleSession``) and enforces its timeouts.

What it needs per request lives in the session itself (``STATE_KEY``: the record's id, the key it was made
under, when it started, when it was last noted, and the timeouts that apply), so most requests cost nothing
beyond the session Django loads anyway. At most once a minute a request notes itself on the record (one
UPDATE) and reads the timeouts again, so a changed organization policy applies within a minute. The idle
timeout is counted from the last noted request: a session may end up to a minute early, never late.

Timeouts come from the person's organizations (the strictest applies; ``selectors.session_timeouts_for``),
capped by Django's ``SESSION_COOKIE_AGE``. An expired session is logged out before the view runs: the console
sends the person to the login page, the API answers 401.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth import SESSION_KEY, logout
from django.http import HttpRequest, HttpResponse

from controlplane.error_pages import is_api
from projects import selectors
from projects.services.sessions import (
    console_session_close,
    console_session_create,
    console_session_rekey,
    console_session_touch,
)
from projects.tenancy import client_ip

STATE_KEY = "_console_session"
#: How often a request notes itself on the record (and reads the timeouts again), in seconds.
TOUCH_INTERVAL_S = 60


def current_console_session_id(request: Any) -> str | None:
    """The record id of the request's own session (None before its first answer, or without a session)."""
    state = getattr(request, "session", {}).get(STATE_KEY)
    return state["id"] if state else None


def _expired_because(state: dict[str, Any], now: float) -> str | None:
    if state.get("absolute") and now - state["started"] > state["absolute"]:
        return f"absolute timeout ({state['absolute'] // 60} minutes)"
    if state.get("idle") and now - state["seen"] > state["idle"]:
        return f"idle timeout ({state['idle'] // 60} minutes)"
    return None


class ConsoleSessionMiddleware:
    """After ``AuthenticationMiddleware`` and ``MessageMiddleware``: it reads ``request.user`` and may leave a
    message for the login page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started_with = self._before(request)
        response = self.get_response(request)
        self._after(request, started_with)
        return response

    @staticmethod
    def _before(request: HttpRequest) -> dict[str, Any] | None:
        """Ends an expired session, notes the request once a minute; returns the state the request goes on with."""
        session = request.session
        state = session.get(STATE_KEY) if SESSION_KEY in session else None
        if state is None:
            return None
        now = time.time()
        user_agent = request.headers.get("User-Agent", "")[:256]
        reason = _expired_because(state, now)
        if reason is not None:
            if request.user.is_authenticated:
                console_session_close(user_id=request.user.pk, session_id=state["id"], action="session.expire",
                                      reason=reason, ip=client_ip(request), user_agent=user_agent)
            logout(request)
            if not is_api(request):
                messages.info(request, f"Your session ended after its {reason}; log in again.")
            return None
        if now - state["seen"] < TOUCH_INTERVAL_S or not request.user.is_authenticated:
            return state
        if not console_session_touch(session_id=state["id"], ip=client_ip(request),
                                     now=datetime.fromtimestamp(now, tz=UTC)):
            logout(request)  # the record is gone: the session was ended while this request was on its way
            return None
        idle, absolute = selectors.session_timeouts_for(user_id=request.user.pk)
        state = {**state, "seen": now, "idle": idle, "absolute": absolute}
        session[STATE_KEY] = state
        return state

    @staticmethod
    def _after(request: HttpRequest, started_with: dict[str, Any] | None) -> None:
        session = getattr(request, "session", None)
        if session is None:
            return
        state = session.get(STATE_KEY) if SESSION_KEY in session else None
        if started_with is not None and (state is None or state["id"] != started_with["id"]):
            # This request ended its session (a logout on the console or the ops site, or a login as someone
            # else): its record goes with it.
            console_session_close(user_id=started_with["user"], session_id=started_with["id"], action="user.logout",
                                  reason="logged out" if state is None else "replaced by another login",
                                  ip=client_ip(request), user_agent=request.headers.get("User-Agent", "")[:256])
        if SESSION_KEY not in session or not session.session_key:
            return
        if state is None:
            # A session logged in by this request (or one from before sessions had records): record it.
            if not request.user.is_authenticated:
                return
            record = console_session_create(user=request.user, session_key=session.session_key,
                                            ip=client_ip(request), user_agent=request.headers.get("User-Agent", ""))
            idle, absolute = selectors.session_timeouts_for(user_id=request.user.pk)
            now = record.created_at.timestamp()
            session[STATE_KEY] = {"id": record.pk, "user": request.user.pk, "key": session.session_key,
                                  "started": now, "seen": now, "idle": idle, "absolute": absolute}
        elif state["key"] != session.session_key:
            console_session_rekey(session_id=state["id"], session_key=session.session_key)
            session[STATE_KEY] = {**state, "key": session.session_key}
