"""Two-factor login: a TOTP authenticator (RFC 6238, through pyotp) and ten single-use recovery codes.

Enrolment has two steps: :func:`two_factor_enrol_begin` makes an unconfirmed device with a new secret (shown
as a QR code and as text), :func:`two_factor_enrol_confirm` checks a first code from the app, confirms the
device and returns the recovery codes, which are shown once and stored hashed.

Every code is checked like a password (``services.logins.login_attempt_count``: counted against the account
and the client IP before it is looked at, locked out beyond ``LOGIN_MAX_FAILURES``, a right code takes its
attempt back), so a stolen password does not buy unlimited guesses at the code. A TOTP code is accepted for
the current 30-second step and one either side (clock drift), and never twice: the device keeps the last step
it accepted and refuses that step and every earlier one, so a code seen over a shoulder cannot be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

import pyotp
from django.db import transaction
from django.utils import timezone

from controlplane import errors
from projects import selectors
from projects.audit import audit_record_for_person
from projects.models import RecoveryCode, TwoFactorDevice, User
from projects.services.logins import LoginLocked, login_attempt_count, login_attempt_refund, login_audit
from projects.services.sessions import console_sessions_end_all

ISSUER = "mqcloud"
RECOVERY_CODE_COUNT = 10
#: A TOTP code is accepted for this many 30-second steps either side of now (the phone's clock may drift).
VALID_WINDOW = 1
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread from a printout
_WRONG_CODE = "The code is not correct (or was already used); enter the current code from your app."


class TwoFactorCodeInvalid(errors.NotAuthenticated):
    title = "Two-factor code not correct"
    type_slug = "two-factor-code-invalid"


def provisioning_uri(device: TwoFactorDevice) -> str:
    """The ``otpauth://`` URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(device.secret).provisioning_uri(name=device.user.email, issuer_name=ISSUER)


def _recovery_code_hash(code: str) -> str:
    normalized = "".join(ch for ch in code.lower() if ch.isalnum())
    return hashlib.sha256(normalized.encode()).hexdigest()


def _new_recovery_code() -> str:
    # 10 characters of a 31-letter alphabet: about 50 bits, tried at most LOGIN_MAX_FAILURES times a window.
    raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


def _totp_step(device: TwoFactorDevice, code: str) -> int | None:
    """The time step the code belongs to (within the window around now), or None."""
    code = "".join(ch for ch in code if not ch.isspace())
    if not (len(code) == 6 and code.isdigit()):
        return None
    totp = pyotp.TOTP(device.secret)
    now_step = int(time.time()) // totp.interval
    for step in range(now_step - VALID_WINDOW, now_step + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.at(step * totp.interval), code):
            return step
    return None


def _consume(*, user: User, code: str, allow_recovery: bool) -> str | None:
    """Uses up ``code`` if it is right: ``"totp"`` or ``"recovery_code"``; None when it is not right."""
    with transaction.atomic():
        # Locked so two requests with one code cannot both pass the "newer step than the last one" test.
        device = TwoFactorDevice.objects.select_for_update().filter(user=user).first()
        if device is None:
            return None
        step = _totp_step(device, code)
        if step is not None and step > device.last_used_step:
            device.last_used_step = step
            device.save(update_fields=["last_used_step"])
            return "totp"
        if not allow_recovery or device.confirmed_at is None:
            return None
        used = RecoveryCode.objects.filter(user=user, code_hash=_recovery_code_hash(code),
                                           used_at__isnull=True).update(used_at=timezone.now())
        return "recovery_code" if used else None


def _code_check(*, user: User, code: str, ip: str | None, allow_recovery: bool) -> str:
    """A counted check of a code; returns how it was right, raises ``LoginLocked`` or ``TwoFactorCodeInvalid``."""
    counted = login_attempt_count(email=user.email, ip=ip)
    used = _consume(user=user, code=code, allow_recovery=allow_recovery)
    if used is None:
        raise TwoFactorCodeInvalid(_WRONG_CODE, errors={"code": [_WRONG_CODE]})
    login_attempt_refund(counted)
    return used


def _audit_failed_code(*, user: User, purpose: str, exc: errors.DomainError, ip: str | None,
                       user_agent: str) -> None:
    result = "locked" if isinstance(exc, LoginLocked) else "failure"
    audit_record_for_person(user=user, action="two_factor.code_failed", ip=ip, user_agent=user_agent,
                            changes={"purpose": purpose, "result": result})


def _recovery_codes_replace(user: User) -> list[str]:
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    RecoveryCode.objects.filter(user=user).delete()
    RecoveryCode.objects.bulk_create([RecoveryCode(user=user, code_hash=_recovery_code_hash(code)) for code in codes])
    return codes


# --- enrolment ----------------------------------------------------------------------------------------
def two_factor_enrol_begin(*, user: User) -> TwoFactorDevice:
    """A new unconfirmed authenticator with a fresh secret (replacing an earlier unconfirmed one, whose secret
    may have been seen); refused (409) while a confirmed one exists: disable it first."""
    with transaction.atomic():
        device = TwoFactorDevice.objects.select_for_update().filter(user=user).first()
        if device is not None and device.confirmed_at is not None:
            raise errors.Conflict("Two-factor login is already on; turn it off first to set up another app.")
        if device is None:
            device = TwoFactorDevice(user=user)
        device.secret = pyotp.random_base32()
        device.last_used_step = 0
        device.full_clean()
        device.save()
    return device


def two_factor_enrol_confirm(*, user: User, code: str, ip: str | None, user_agent: str = "",
                             keep_session_id: str | None = None) -> list[str]:
    """Turns two-factor login on with the first right code from the app; returns the ten recovery codes, the
    only time they are seen in clear. Every session but ``keep_session_id`` (the enrolling one) ends, as on a
    password change: one opened with the password alone must not outlive the switch to two factors."""
    device = selectors.two_factor_device_for(user=user)
    if device is None or device.confirmed_at is not None:
        raise errors.Conflict("There is no two-factor setup in progress; start it again.")
    try:
        _code_check(user=user, code=code, ip=ip, allow_recovery=False)
    except (LoginLocked, TwoFactorCodeInvalid) as exc:
        _audit_failed_code(user=user, purpose="enrol", exc=exc, ip=ip, user_agent=user_agent)
        raise
    with transaction.atomic():
        locked = TwoFactorDevice.objects.select_for_update().filter(pk=device.pk).first()
        # Checked under the lock: a confirm or a new setup that ran meanwhile wins, and a code checked against a
        # secret that has since been replaced confirms nothing.
        if locked is None or locked.confirmed_at is not None or locked.secret != device.secret:
            raise errors.Conflict("The two-factor setup changed meanwhile; open the page again.")
        locked.confirmed_at = timezone.now()
        locked.save(update_fields=["confirmed_at"])
        codes = _recovery_codes_replace(user)
        ended = console_sessions_end_all(user=user, keep_session_id=keep_session_id, reason="two_factor.enrol",
                                         ip=ip, user_agent=user_agent, audited=False)
        audit_record_for_person(user=user, action="two_factor.enrol", ip=ip, user_agent=user_agent,
                                changes={"method": "totp", "recovery_codes": len(codes), "sessions_ended": ended})
    return codes


def two_factor_disable(*, user: User, code: str, ip: str | None, user_agent: str = "") -> None:
    """Turns two-factor login off; needs a current code (or a recovery code), so a borrowed session cannot."""
    if not selectors.two_factor_enabled(user):
        raise errors.Conflict("Two-factor login is not on.")
    try:
        used = _code_check(user=user, code=code, ip=ip, allow_recovery=True)
    except (LoginLocked, TwoFactorCodeInvalid) as exc:
        _audit_failed_code(user=user, purpose="disable", exc=exc, ip=ip, user_agent=user_agent)
        raise
    with transaction.atomic():
        TwoFactorDevice.objects.filter(user=user).delete()
        RecoveryCode.objects.filter(user=user).delete()
        audit_record_for_person(user=user, action="two_factor.disable", ip=ip, user_agent=user_agent,
                                changes={"confirmed_with": used})


def two_factor_recovery_codes_renew(*, user: User, code: str, ip: str | None, user_agent: str = "") -> list[str]:
    """Ten new recovery codes in place of the old ones (used up, or seen by someone else); returns them, the only
    time they are seen in clear. Needs a code from the app, not a recovery code: whoever holds one old code must
    not turn it into ten fresh ones."""
    if not selectors.two_factor_enabled(user):
        raise errors.Conflict("Two-factor login is not on.")
    try:
        _code_check(user=user, code=code, ip=ip, allow_recovery=False)
    except (LoginLocked, TwoFactorCodeInvalid) as exc:
        _audit_failed_code(user=user, purpose="recovery_codes_renew", exc=exc, ip=ip, user_agent=user_agent)
        raise
    with transaction.atomic():
        codes = _recovery_codes_replace(user)
        audit_record_for_person(user=user, action="two_factor.recovery_codes_renew", ip=ip, user_agent=user_agent,
                                changes={"recovery_codes": len(codes)})
    return codes


def two_factor_reset_by_operator(*, user: User, operator: User, ip: str | None, user_agent: str = "") -> bool:
    """An operator turns off a person's two-factor login (phone and recovery codes both lost, identity checked by
    support); False when it was not on. Recorded on the person's account, naming the operator."""
    with transaction.atomic():
        removed, _ = TwoFactorDevice.objects.filter(user=user).delete()
        RecoveryCode.objects.filter(user=user).delete()
        if removed:
            audit_record_for_person(user=user, action="two_factor.reset", ip=ip, user_agent=user_agent,
                                    changes={"operator": operator.email})
    return bool(removed)


# --- login --------------------------------------------------------------------------------------------
def two_factor_login(*, user: User, code: str, ip: str | None, user_agent: str = "",
                     method: str = "password") -> str:
    """The second step of a login whose password was right: checks the code (a TOTP code or a recovery code,
    which is then used up). Audited like every login, ``user.login`` with method ``password+totp`` or
    ``password+recovery_code`` and the result; a recovery code's use also as ``two_factor.recovery_code_used``
    with how many are left. Returns how the code was right."""
    try:
        used = _code_check(user=user, code=code, ip=ip, allow_recovery=True)
    except (LoginLocked, TwoFactorCodeInvalid) as exc:
        result = "locked" if isinstance(exc, LoginLocked) else "failure"
        login_audit(email=user.email, user=user, method=f"{method}+code", result=result, ip=ip,
                    user_agent=user_agent)
        raise
    login_audit(email=user.email, user=user, method=f"{method}+{used}", result="success", ip=ip,
                user_agent=user_agent)
    if used == "recovery_code":
        audit_record_for_person(user=user, action="two_factor.recovery_code_used", ip=ip, user_agent=user_agent,
                                changes={"recovery_codes_left": selectors.recovery_codes_left(user=user)})
    return used
