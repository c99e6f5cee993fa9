"""Rate limits per credential (API key or user) and per client IP; 429 with Retry-After."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class _SettingsRateThrottle(SimpleRateThrottle):
    """Reads its rate at request time, so operators (and tests) can change it without a restart."""

    def __init__(self) -> None:  # SimpleRateThrottle reads the rate in __init__
        pass

    def allow_request(self, request, view) -> bool:
        self.rate = settings.API_RATE_LIMITS.get(self.scope)
        if not self.rate:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def parse_rate(self, rate):
        count, period = rate.split("/")
        seconds = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600,
                   "d": 86400, "day": 86400}[period]
        return int(count), seconds


class CredentialRateThrottle(_SettingsRateThrottle):
    scope = "credential"

    def get_cache_key(self, request, view) -> str | None:
        api_key = getattr(request, "auth", None)
        key_id = getattr(api_key, "id", None)
        if key_id:
            return f"throttle:credential:{key_id}"
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return f"throttle:credential:{user.pk}"
        return None


class ClientIpRateThrottle(_SettingsRateThrottle):
    scope = "ip"

    def get_cache_key(self, request, view) -> str:
        return f"throttle:ip:{self.get_ident(request)}"


class SignupRateThrottle(_SettingsRateThrottle):
    scope = "signup"

    def get_cache_key(self, request, view) -> str:
        return f"throttle:signup:{self.get_ident(request)}"
