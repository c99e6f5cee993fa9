"""An organization's security policy: its IP allowlist, console session timeouts, whether removing a
member ends their sessions, and whether members must use two-factor login; and the allowlist's (and the
two-factor requirement's) enforcement on every organization-scoped request.

The policy lives on the ``Organization`` row (see there why). Owners and admins change it
(``Perm.ORGANIZATION_MANAGE``); every change is audited as ``organization.security_update``.
"""

from __future__ import annotations

from typing import Any, Final

from django.conf import settings
from django.db import transaction

from controlplane import errors, ratelimit
from controlplane.db import lock_row
from controlplane.errors import field_invalid
from projects import selectors
from projects.allowlist import AllowlistError, allowlist_normalize, allowlist_permits
from projects.audit import audit_record
from projects.models import Organization
from projects.roles import Perm
from projects.tenancy import Principal


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


#: A field of :func:`organization_security_update` that is left as it is (None clears a timeout).
UNCHANGED: Final = _Unchanged()
MIN_TIMEOUT_MINUTES = 5


class AddressNotAllowed(errors.PermissionDenied):
    title = "Address not allowed"
    type_slug = "ip-not-allowed"


def max_timeout_minutes() -> int:
    """No timeout can outlast Django's own session lifetime, which ends every session anyway."""
    return settings.SESSION_COOKIE_AGE // 60


def _timeout_check(field: str, minutes: int | None) -> None:
    if minutes is not None and not MIN_TIMEOUT_MINUTES <= minutes <= max_timeout_minutes():
        raise field_invalid(field, f"Between {MIN_TIMEOUT_MINUTES} and {max_timeout_minutes()} minutes "
                                   f"(the platform's session lifetime), or empty for no limit of its own.")


def organization_security_update(
    *,
    principal: Principal,
    ip_allowlist: list[str] | _Unchanged = UNCHANGED,
    session_idle_timeout_minutes: int | None | _Unchanged = UNCHANGED,
    session_absolute_timeout_minutes: int | None | _Unchanged = UNCHANGED,
    end_sessions_on_removal: bool | _Unchanged = UNCHANGED,
    require_two_factor: bool | _Unchanged = UNCHANGED,
) -> Organization:
    """Changes the policy. A new allowlist must let the caller's own address in (the lock-out guard): a list
    the caller could not use again is refused with a 400 saying which address to add. Likewise a person who
    turns on "require two-factor" must have it themselves, or their next page would be the enrolment."""
    principal.require(Perm.ORGANIZATION_MANAGE)
    updates: dict[str, Any] = {}
    if not isinstance(ip_allowlist, _Unchanged):
        try:
            updates["ip_allowlist"] = allowlist_normalize(ip_allowlist)
        except AllowlistError as exc:
            raise errors.ValidationFailed("The IP allowlist has invalid entries.",
                                          errors={"ip_allowlist": exc.messages}) from exc
        if not allowlist_permits(updates["ip_allowlist"], principal.ip):
            here = principal.ip or "unknown"
            raise field_invalid("ip_allowlist", f"Your current address ({here}) is not in the list: saving it would "
                                                f"lock you out. Add {here} (or a network holding it) to the list.")
    for field, minutes in (("session_idle_timeout_minutes", session_idle_timeout_minutes),
                           ("session_absolute_timeout_minutes", session_absolute_timeout_minutes)):
        if not isinstance(minutes, _Unchanged):
            _timeout_check(field, minutes)
            updates[field] = minutes
    if not isinstance(end_sessions_on_removal, _Unchanged):
        updates["end_sessions_on_removal"] = end_sessions_on_removal
    if not isinstance(require_two_factor, _Unchanged):
        if require_two_factor and principal.user is not None and not selectors.two_factor_enabled(principal.user):
            raise field_invalid("require_two_factor", "Turn on two-factor login for your own account first "
                                                      "(Account → Two-factor login), then require it of everyone.")
        updates["require_two_factor"] = require_two_factor
    with transaction.atomic():
        organization = lock_row(Organization, principal.organization.pk)
        changes = {field: [getattr(organization, field), new] for field, new in updates.items()
                   if getattr(organization, field) != new}
        if changes:
            for field, (_, new) in changes.items():
                setattr(organization, field, new)
            organization.save(update_fields=list(changes))
            audit_record(principal=principal, action="organization.security_update", target=organization,
                         changes=changes)
    return organization


def network_access_check(principal: Principal, *, surface: str) -> None:
    """Refuses a request from an address outside the organization's allowlist (``surface``: console or api).
    A refusal is audited once a minute per organization and address, so a client retrying in a loop cannot
    flood the log."""
    organization = principal.organization
    if allowlist_permits(organization.ip_allowlist, principal.ip):
        return
    address = principal.ip or "unknown"
    if ratelimit.hit(f"allowlist-refusal:{organization.pk}:{address}", limit=1, window=60).allowed:
        audit_record(principal=principal, action="organization.ip_refused", target=organization,
                     changes={"ip": address, "surface": surface})
    raise AddressNotAllowed(f"{organization.name} accepts requests only from the networks on its IP allowlist, "
                            f"and your address ({address}) is not one of them. Ask an owner or admin of "
                            f"{organization.name} to add it.")


class TwoFactorRequired(errors.PermissionDenied):
    title = "Two-factor login required"
    type_slug = "two-factor-required"


def two_factor_policy_met(principal: Principal) -> bool:
    """False for a person in an organization that requires two-factor login who has not turned it on. API keys
    are not people and pass: the policy is about how people log in."""
    if not principal.organization.require_two_factor or principal.api_key is not None or principal.user is None:
        return True
    return selectors.two_factor_enabled(principal.user)


def two_factor_policy_check(principal: Principal) -> None:
    """The API's side of the policy (the console sends the person to the enrolment page instead)."""
    if not two_factor_policy_met(principal):
        raise TwoFactorRequired(f"{principal.organization.name} requires two-factor login: turn it on in the "
                                f"console (Account → Two-factor login) before using the API with this session.")
