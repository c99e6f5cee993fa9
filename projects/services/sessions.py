"""Console sessions: their records (``ConsoleSession``) made, kept up to date and ended.

A record is made when a logged-in session first answers (``projects.session_tracking``), follows the session's
key when Django rotates it, and notes the latest request at most once a minute. Ending a session deletes it from
Django's session store, so its cookie stops working at the next request, and deletes its record.

Ending is recorded in the audit log of every organization of the person (``audit_record_for_person``); so are
logging out and the timeouts, which the session's own request ends.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from importlib import import_module

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from ua_parser import parse as parse_user_agent

from controlplane import errors
from projects.audit import audit_record_for_person
from projects.models import ConsoleSession, User
from projects.tenancy import Principal


def _session_store_class() -> type:
    return import_module(settings.SESSION_ENGINE).SessionStore


def device_from_user_agent(user_agent: str) -> str:
    """``Firefox 133 on Ubuntu``, ``Mobile Safari 17 on iOS (iPhone)``; ``curl 8`` for what is no browser."""
    if not user_agent:
        return "Unknown device"
    parsed = parse_user_agent(user_agent)
    browser = parsed.user_agent
    name = f"{browser.family} {browser.major}".strip() if browser and browser.major else (
        browser.family if browser else "Unknown browser")
    if parsed.os is not None and parsed.os.family != "Other":
        name += f" on {parsed.os.family}"
    device = parsed.device
    if device is not None and device.family not in ("Other", "Spider") and device.model:
        name += f" ({device.model})"
    return name[:120]


def console_session_create(*, user: User, session_key: str, ip: str | None, user_agent: str) -> ConsoleSession:
    """The record of a session that just logged in. The person's records whose session has certainly lapsed
    (no request for longer than Django keeps a session) go at the same time: a session abandoned without
    logging out leaves its record behind, and this bounds them without a periodic job."""
    ConsoleSession.objects.filter(user=user, last_seen_at__lt=_lapsed_before(timezone.now())).delete()
    user_agent = "".join(ch for ch in user_agent if ch.isprintable())[:256]
    record = ConsoleSession(user=user, session_key=session_key, ip=ip, user_agent=user_agent,
                            device=device_from_user_agent(user_agent))
    record.full_clean()
    record.save()
    return record


def console_sessions_purge(*, now: datetime | None = None) -> int:
    """Housekeeping (hourly): Django's expired sessions (its ``clearsessions``) and the records of sessions that
    have certainly lapsed, of people who never came back to log in again. Returns how many records went."""
    _session_store_class().clear_expired()
    deleted, _ = ConsoleSession.objects.filter(last_seen_at__lt=_lapsed_before(now or timezone.now())).delete()
    return deleted


def _lapsed_before(now: datetime) -> datetime:
    # No request for longer than Django keeps a session: the session is gone whatever its expiry said.
    return now - timedelta(seconds=settings.SESSION_COOKIE_AGE)


def console_session_touch(*, session_id: str, ip: str | None, now: datetime) -> bool:
    """Notes a request of the session; False when its record is gone (the session was ended elsewhere)."""
    return ConsoleSession.objects.filter(pk=session_id).update(last_seen_at=now, ip=ip) == 1


def console_session_rekey(*, session_id: str, session_key: str) -> None:
    """Django gave the session a new key (a login, a password change): the record follows it."""
    ConsoleSession.objects.filter(pk=session_id).update(session_key=session_key)


def _end(records: list[ConsoleSession]) -> None:
    store = _session_store_class()
    for record in records:
        store(session_key=record.session_key).delete()
    ConsoleSession.objects.filter(pk__in=[record.pk for record in records]).delete()


def console_session_end(*, principal: Principal, session: ConsoleSession) -> None:
    """A person ends one of their own sessions (this one too: that is logging out)."""
    if principal.user is None or session.user_id != principal.user.pk:
        raise errors.NotFound(f"No console session {session.pk}.")
    with transaction.atomic():
        _end([session])
        audit_record_for_person(user=principal.user, action="session.end", ip=principal.ip,
                                user_agent=principal.user_agent,
                                changes={"session": session.pk, "device": session.device, "ip": session.ip})


def console_sessions_end_others(*, principal: Principal, keep_session_id: str | None) -> int:
    """A person ends every session but the one they are using; returns how many ended."""
    if principal.user is None:
        raise errors.PermissionDenied("An API key has no console sessions; use a console session.")
    return console_sessions_end_all(user=principal.user, keep_session_id=keep_session_id, reason="ended by the user",
                                    ip=principal.ip, user_agent=principal.user_agent)


def console_sessions_end_all(*, user: User, keep_session_id: str | None, reason: str, ip: str | None,
                             user_agent: str = "", audited: bool = True) -> int:
    """Ends every session of ``user`` except ``keep_session_id``; returns how many ended. ``audited`` False when
    the caller's own audit event says it (a password change)."""
    with transaction.atomic():
        records = list(ConsoleSession.objects.select_for_update().filter(user=user).exclude(pk=keep_session_id or ""))
        _end(records)
        if audited and records:
            audit_record_for_person(user=user, action="session.end_all", ip=ip, user_agent=user_agent,
                                    changes={"sessions": [record.pk for record in records], "reason": reason})
    return len(records)


def console_session_close(*, user_id: str | None, session_id: str, action: str, reason: str, ip: str | None,
                          user_agent: str) -> None:
    """The record of a session that ends on its own request: logged out (``user.logout``), or found past its idle
    or absolute timeout (``session.expire``); the caller logs the request out. Nothing when the record is gone
    already (the session was ended from elsewhere, and that was recorded)."""
    with transaction.atomic():
        record = ConsoleSession.objects.select_related("user").filter(pk=session_id, user_id=user_id).first()
        if record is not None:
            record.delete()
            audit_record_for_person(user=record.user, action=action, ip=ip, user_agent=user_agent,
                                    changes={"session": session_id, "reason": reason})
