"""Rate limits per credential (API key or user) and per client IP; 429 with Retry-After.

Counted by ``controlplane.ratelimit`` (atomic, increment then compare), not by DRF's cache history, which
reads the history and writes it back: parallel requests all read the same history and all pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
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


@dataclass(frozen=True)
class DeferredRead:
    """A value an authenticator needs from Redis, read in the rate limits' round trip (one MULTI) instead of one
    of its own. ``resolve`` gets the value right after it, before the limits are judged and before the view
    runs; it raises (e.g. ``AuthenticationFailed``) to refuse the request, or may replace ``request.user``."""

    key: str
    resolve: Callable[[bytes | None], None]


def defer_read(request: Request, read: DeferredRead) -> bool:
    """Hands ``read`` to the view's rate limits if its view counts them in one go (and in Redis); False: the
    caller must read it itself."""
    view = (request.parser_context or {}).get("view")
    if not isinstance(view, BatchedThrottlesMixin) or settings.RATE_LIMIT_STORE != "redis":
        return False
    request.__dict__.setdefault("deferred_reads", []).append(read)
    return True


class BatchedThrottlesMixin:
    """For views whose throttles are all ours: counts them in one go (:func:`ratelimit.hit_rates`), with the
    authenticator's deferred reads (:func:`defer_read`) in the same round trip; DRF's rules otherwise: every
    throttle counts the request, and a refusal waits for the longest ``Retry-After``."""

    def check_throttles(self, request: Request) -> None:
        reads: list[DeferredRead] = request.__dict__.pop("deferred_reads", [])
        throttles = self.get_throttles()  # type: ignore[attr-defined]
        if not all(isinstance(throttle, _SettingsRateThrottle) for throttle in throttles):
            _resolve(reads, ratelimit.hit_rates([], [read.key for read in reads])[1])
            return super().check_throttles(request)  # type: ignore[misc]
        idents = [(throttle, throttle.get_ident_key(request, self)) for throttle in throttles]
        counted = [(throttle, ident) for throttle, ident in idents if ident is not None]
        hits, values = ratelimit.hit_rates([(throttle.scope, ident) for throttle, ident in counted],
                                           [read.key for read in reads])
        _resolve(reads, values)
        durations = []
        for (throttle, _), hit in zip(counted, hits, strict=True):
            throttle._hit = hit
            if hit is not None and not hit.allowed:
                durations.append(hit.retry_after)
        if durations:
            self.throttled(request, max(durations))  # type: ignore[attr-defined]
        return None


def _resolve(reads: list[DeferredRead], values: list[bytes | None]) -> None:
    for read, value in zip(reads, values, strict=True):
        read.resolve(value)
