"""Rate limits per credential (API key or user) and per client IP; 429 with Retry-After.

Counted by ``controlplane.ratelimit`` (atomic, increment then compare), not by DRF's cache history, which
reads the history and writes it back: parallel requests all read the same history and all pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.throttling import BaseThrottle

from controlplane import ratelimit

if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView


class _SettingsRateThrottle(BaseThrottle):
    """Reads its rate (``API_RATE_LIMITS[scope]``) at request time, so operators (and tests) can change it
    without a restart."""

    scope: str
    _hit: ratelimit.Hit | None = None

    def get_ident_key(self, request: Request, view: APIView) -> str | None:
        raise NotImplementedError

    def allow_request(self, request: Request, view: APIView) -> bool:
        ident = self.get_ident_key(request, view)
        if ident is None:
            return True
        self._hit = ratelimit.hit_rate(self.scope, ident)
        return self._hit is None or self._hit.allowed

    def wait(self) -> float | None:
        return self._hit.retry_after if self._hit is not None else None


class CredentialRateThrottle(_SettingsRateThrottle):
    scope = "credential"

    def get_ident_key(self, request: Request, view: APIView) -> str | None:
        api_key = getattr(request, "auth", None)
        key_id = getattr(api_key, "id", None)
        if key_id:
            return str(key_id)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return str(user.pk)
        return None


class ClientIpRateThrottle(_SettingsRateThrottle):
    scope = "ip"

    def get_ident_key(self, request: Request, view: APIView) -> str:
        return self.get_ident(request)


class SignupRateThrottle(_SettingsRateThrottle):
    """Counts every signup request, whatever its answer (201, 400, 409), so addresses cannot be probed."""

    scope = "signup"

    def get_ident_key(self, request: Request, view: APIView) -> str:
        return self.get_ident(request)


class BatchedThrottlesMixin:
    """For views whose throttles are all ours: counts them in one go (:func:`ratelimit.hit_rates`), with DRF's
    rules otherwise: every throttle counts the request, and a refusal waits for the longest ``Retry-After``."""

    def check_throttles(self, request: Request) -> None:
        throttles = self.get_throttles()  # type: ignore[attr-defined]
        if not all(isinstance(throttle, _SettingsRateThrottle) for throttle in throttles):
            return super().check_throttles(request)  # type: ignore[misc]
        idents = [(throttle, throttle.get_ident_key(request, self)) for throttle in throttles]  # type: ignore[arg-type]
        counted = [(throttle, ident) for throttle, ident in idents if ident is not None]
        hits = ratelimit.hit_rates([(throttle.scope, ident) for throttle, ident in counted])
        durations = []
        for (throttle, _), hit in zip(counted, hits, strict=True):
            throttle._hit = hit
            if hit is not None and not hit.allowed:
                durations.append(hit.retry_after)
        if durations:
            self.throttled(request, max(durations))  # type: ignore[attr-defined]
        return None
