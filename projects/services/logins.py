"""Login brute-force protection: the one counted password check of every login, and its lockout."""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate

from controlplane import errors, ratelimit
from projects.audit import audit_record_for_person
from projects.models import Membership, User
from projects.roles import Role
from projects.selectors import email_domain, sso_connection_for_email, two_factor_enabled


class SsoRequired(errors.PermissionDenied):
    title = "Single sign-on required"
    type_slug = "sso-required"


class LoginLocked(errors.RateLimited):
    title = "Too many failed logins"
    type_slug = "login-locked"


def login_lockout_key(email: str) -> str:
    return f"login-failures:email:{hashlib.sha256(email.lower().encode()).hexdigest()}"


def login_authenticate(*, email: str, password: str, ip: str | None, request: Any = None, method: str | None = None,
                       user_agent: str = "") -> User:
    """The one password check of every login (console, ops site, invitations, password change).

    With ``method`` (a login rather than a password check inside a session) every outcome is audited:
    ``user.login`` with the method, the client IP and the result (``success``, ``failure``, ``locked``).

    The attempt is counted against the address and the client IP before the password is looked at
    (``controlplane.ratelimit``: increment, then compare), so parallel guesses cannot all pass a check made
    before any of them was recorded; beyond the limit the password is not checked at all. A right password
    takes its attempt back: only failures use up the allowance.
    """
    try:
        if method is not None:
            password_login_check(email=email)
        user = _password_check(email=email, password=password, ip=ip, request=request)
    except errors.DomainError as exc:
        if method is not None:
            result = {LoginLocked: "locked", SsoRequired: "sso_required"}.get(type(exc), "failure")
            login_audit(email=email, user=None, method=method, result=result, ip=ip, user_agent=user_agent)
        raise
    if method is not None:
        # With two-factor the right password is only the first step: the login succeeds (or not) at the code.
        result = "second_factor_required" if two_factor_enabled(user) else "success"
        login_audit(email=email, user=user, method=method, result=result, ip=ip, user_agent=user_agent)
    return user


def login_audit(*, email: str, user: User | None, method: str, result: str, ip: str | None,
                user_agent: str = "") -> None:
    """One ``user.login`` event per organization of the person the address belongs to (once, without an
    organization, for an address nobody has)."""
    email = "".join(ch for ch in email.strip().lower() if ch.isprintable())
    if result == "locked" and not ratelimit.hit(f"login-audit-locked:{login_lockout_key(email)}", limit=1,
                                                window=60).allowed:
        return  # a locked address under attack is recorded once a minute, not once per refused guess
    if user is None:
        user = User.objects.filter(email=email).first()
    audit_record_for_person(user=user, action="user.login", ip=ip, user_agent=user_agent,
                            actor_label=email[:254], changes={"method": method, "result": result, "email": email})


def login_attempt_count(*, email: str, ip: str | None) -> list[str]:
    """Counts one attempt at an account (a password or a two-factor code) against the address and the client
    IP, and refuses it beyond the limit (``LoginLocked``). Returns the keys counted, for
    :func:`login_attempt_refund` when the attempt turns out right: only failures use up the allowance."""
    window = settings.LOGIN_LOCKOUT_SECONDS
    limit = settings.LOGIN_MAX_FAILURES
    counted = [(login_lockout_key(email), ratelimit.hit(login_lockout_key(email), limit=limit, window=window))]
    if ip:
        # An IP may front many people (an office NAT), so it gets more room than a single address.
        key = f"login-failures:ip:{ip}"
        counted.append((key, ratelimit.hit(key, limit=limit * 4, window=window)))
    refused = [hit for _, hit in counted if not hit.allowed]
    if refused:
        raise LoginLocked("Too many failed logins; try again later.",
                          retry_after=max(hit.retry_after for hit in refused))
    return [key for key, _ in counted]


def login_attempt_refund(keys: list[str]) -> None:
    for key in keys:
        ratelimit.refund(key)


def _password_check(*, email: str, password: str, ip: str | None, request: Any) -> User:
    counted = login_attempt_count(email=email, ip=ip)
    user = authenticate(request, username=email.lower(), password=password)
    if user is None:
        raise errors.NotAuthenticated("The email or the password is not correct.")
    login_attempt_refund(counted)
    return user


def login_lockout_clear(*, email: str) -> None:
    """Forgets the failed logins of an address (its password was just changed or reset)."""
    ratelimit.reset(login_lockout_key(email))


def password_login_check(*, email: str) -> None:
    """"Require SSO" (issue 17): no password login for an address on an organization's verified domains, except
    an owner flagged break-glass (the IdP may be down). Checked before the password, which then is never
    tried; API keys never come here."""
    connection = sso_connection_for_email(email=email)
    if connection is None or not connection.require_sso:
        return
    if Membership.objects.filter(organization=connection.organization, user__email=email.strip().lower(),
                                 role=Role.OWNER, sso_break_glass=True).exists():
        return
    raise SsoRequired(f"{connection.organization.name} requires single sign-on for {email_domain(email)}: use "
                      f"\u201cLog in with SSO\u201d.")
