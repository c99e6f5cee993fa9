"""Writes about a person's own account rather than an organization's data: password change and reset.

Keyword-only, typed, atomic. A person belongs to any number of organizations and the audit log is kept per
organization, so a password event is recorded in each of them (and without one for a person in none, for
the ops site). The login checks and lockout they rely on are ``services.logins.login_authenticate`` and
``services.logins.login_lockout_clear``.
"""

from __future__ import annotations

import hashlib

from django.contrib.auth.tokens import default_token_generator
from django.db import transaction
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode

from controlplane import errors, ratelimit
from controlplane.db import lock_row
from controlplane.errors import field_invalid
from controlplane.queue import enqueue_on_commit
from projects.audit import audit_record_for_person
from projects.models import User
from projects.services.logins import login_authenticate, login_lockout_clear
from projects.services.sessions import console_sessions_end_all
from projects.services.validation import password_validate

_INVALID_TOKEN = "This reset link is no longer valid (used, expired or mistyped); ask for a new one."


# --- reset ------------------------------------------------------------------------------------------
def password_reset_token(*, user: User) -> str:
    """``<user id, base64>.<Django reset token>``: the token says whose it is, so the link needs nothing else.

    Django's token is an HMAC over the user's id, password hash, last login and a timestamp: it expires after
    ``PASSWORD_RESET_TIMEOUT`` and stops working once the password (hence its hash) changes.
    """
    return f"{urlsafe_base64_encode(force_bytes(user.pk))}.{default_token_generator.make_token(user)}"


def password_reset_user(*, token: str) -> User | None:
    """The person a reset token is valid for right now, or None."""
    uid_b64, _, secret = token.partition(".")
    if not uid_b64 or not secret or len(token) > 200:
        return None
    try:
        user_id = urlsafe_base64_decode(uid_b64).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    # Compared, never trusted: something that cannot be an id (a NUL byte PostgreSQL refuses) is no user.
    if not (len(user_id) <= 32 and user_id.isascii() and user_id.isprintable()):
        return None
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None or not default_token_generator.check_token(user, secret):
        return None
    return user


def password_reset_request(*, email: str, ip: str | None) -> None:
    """Mails a one-time reset link if the address has an account; says nothing either way.

    The caller gets the same answer, and this does the same work, for known and unknown addresses: the
    account is looked up by the mail job, after the response. Limited per client IP and per address.
    """
    email = User.objects.normalize_email(email).lower()
    address = hashlib.sha256(email.encode()).hexdigest()
    hits = [ratelimit.hit_rate("password_reset", ip or "unknown"), ratelimit.hit_rate("password_reset_email", address)]
    refused = [hit for hit in hits if hit is not None and not hit.allowed]
    if refused:
        raise errors.RateLimited("Too many password reset requests; try again later.",
                                 retry_after=max(hit.retry_after for hit in refused))
    enqueue_on_commit("projects.tasks.password_reset_send_email", email)


def password_reset_confirm(*, token: str, new_password: str, ip: str | None, user_agent: str = "") -> User:
    """Sets the password a reset link was mailed for; the link then stops working."""
    hit = ratelimit.hit_rate("password_reset", ip or "unknown")
    if hit is not None and not hit.allowed:
        raise errors.RateLimited("Too many password reset attempts; try again later.", retry_after=hit.retry_after)
    user = password_reset_user(token=token)
    if user is None:
        raise field_invalid("token", _INVALID_TOKEN)
    password_validate(new_password, user, field="new_password")
    with transaction.atomic():
        # Two uses of one link at once: the second finds the hash changed and the token invalid.
        locked = lock_row(User, user.pk)
        if not default_token_generator.check_token(locked, token.partition(".")[2]):
            raise field_invalid("token", _INVALID_TOKEN)
        _password_set(user=locked, password=new_password, action="user.password_reset", ip=ip,
                      user_agent=user_agent, keep_session_id=None)
    # A fresh password deserves a fresh allowance of typos (after the commit: the counters live outside it).
    login_lockout_clear(email=locked.email)
    return locked


# --- change -----------------------------------------------------------------------------------------
def password_change(*, user: User, current_password: str, new_password: str, ip: str | None,
                    user_agent: str = "", keep_session_id: str | None = None) -> User:
    """A signed-in person sets a new password. The current one is checked like a login (counted, locked
    out after too many failures), so a borrowed session cannot guess it at leisure. The caller keeps its
    own session (``keep_session_id``, the console session record; the caller then rotates its key with
    ``update_session_auth_hash``); every other session ends."""
    try:
        # Counted against the account only: the session is proof enough that this is not a login, and the
        # address's allowance (shared by an office behind one NAT) must not stop a signed-in change.
        login_authenticate(email=user.email, password=current_password, ip=None)
    except errors.NotAuthenticated as exc:
        raise field_invalid("current_password", "The current password is not correct.") from exc
    password_validate(new_password, user, field="new_password")
    with transaction.atomic():
        locked = lock_row(User, user.pk)
        _password_set(user=locked, password=new_password, action="user.password_change", ip=ip,
                      user_agent=user_agent, keep_session_id=keep_session_id)
    login_lockout_clear(email=locked.email)
    return locked


def _password_set(*, user: User, password: str, action: str, ip: str | None, user_agent: str,
                  keep_session_id: str | None) -> None:
    user.set_password(password)
    user.save(update_fields=["password"])
    # Django already refuses the other sessions (their stored password hash no longer matches); ending them
    # also takes them off the person's list of sessions and out of the session store.
    ended = console_sessions_end_all(user=user, keep_session_id=keep_session_id, reason=action, ip=ip,
                                     user_agent=user_agent, audited=False)
    audit_record_for_person(user=user, action=action, ip=ip, user_agent=user_agent,
                            changes={"email": user.email, "other_sessions": "logged out", "sessions_ended": ended})
