"""API credentials: ``Authorization: Bearer mqc_<prefix>_<secret>``, or the console's session; and the hash by
which an invitation's token (the credential of its accept link) is stored and looked up."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from functools import partial

from django.utils import timezone
from rest_framework import authentication, exceptions

from controlplane.api.throttling import DeferredRead, defer_read
from projects import key_cache
from projects.models import ApiKey
from projects.tenancy import client_ip

KEY_SCHEME = "mqc"
_PREFIX_RE = re.compile(r"[0-9a-f]{1,16}")


def generate_api_key_secret() -> tuple[str, str, str]:
    """Returns (full key shown once, visible prefix, hash to store)."""
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    full = f"{KEY_SCHEME}_{prefix}_{secret}"
    return full, prefix, hash_secret(secret)


def hash_secret(secret: str) -> str:
    # The secret has 256 bits of entropy, so a fast hash is enough; there is nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


def invitation_token_hash(token: str) -> str:
    """What an invitation stores of its token, and looks it up by: the token is the accept link's credential."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_api_key(raw: str) -> tuple[str, str] | None:
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_SCHEME or not parts[1] or not parts[2]:
        return None
    # Only what generate_api_key_secret makes: anything else (a NUL byte above all, which the database
    # refuses) is simply not a key, and must not reach a query.
    if not _PREFIX_RE.fullmatch(parts[1]):
        return None
    return parts[1], parts[2]


def api_key_authenticate(raw: str, *, pending: key_cache.Unverified | None = None) -> ApiKey | None:
    """The usable key ``raw`` names, or None. With ``pending``, checks that (unverified) cached copy instead of
    looking the key up; the caller then verifies its token."""
    parsed = parse_api_key(raw)
    if parsed is None:
        return None
    prefix, secret = parsed
    # The creator comes along: the key acts with no more than the creator's current role and projects.
    api_key = pending.api_key if pending is not None else key_cache.api_key_by_prefix(prefix)
    candidate_hash = hash_secret(secret)
    stored_hash = api_key.secret_hash if api_key is not None else "0" * 64
    # Compare even when no key matched, so timing does not tell whether a prefix exists.
    if not hmac.compare_digest(candidate_hash, stored_hash) or api_key is None or not api_key.is_usable:
        return None
    if api_key.created_by is not None and not api_key.created_by.user.is_active:
        return None  # a deactivated person's keys stop with their logins
    return api_key


class ApiKeyUser:
    """Stands in for ``request.user`` when a script calls with an API key (there is no person)."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key
        self.pk = self.id = api_key.id

    def __str__(self) -> str:
        return f"api key {self.api_key.prefix}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        token = token.strip()
        if not token:
            raise exceptions.AuthenticationFailed("The Authorization header has no key after Bearer.")
        parsed = parse_api_key(token)
        pending = key_cache.api_key_unverified(parsed[0]) if parsed is not None else None
        if pending is not None:
            api_key = api_key_authenticate(token, pending=pending)
            # The view reads the organization's token with its rate limits (one Redis round trip for both),
            # before it runs; a refusal from the cached copy is only trusted once it is read again here.
            if api_key is not None and defer_read(request, DeferredRead(
                    key=pending.token_key, resolve=partial(self._verify, request, token, pending))):
                return (ApiKeyUser(api_key), api_key)
        api_key = api_key_authenticate(token)
        if api_key is None:
            raise exceptions.AuthenticationFailed("The API key is invalid, revoked or expired.")
        self._note_use(request, api_key)
        return (ApiKeyUser(api_key), api_key)

    def _verify(self, request, token: str, pending: key_cache.Unverified, current: bytes | None) -> None:
        """The deferred half of :meth:`authenticate`: the cached copy stands if its token is current; otherwise
        the key is read again, and replaces it or is refused."""
        if pending.is_current(current):
            self._note_use(request, request.auth)
            return
        api_key = api_key_authenticate(token)
        if api_key is None:
            raise exceptions.AuthenticationFailed("The API key is invalid, revoked or expired.")
        request.user, request.auth = ApiKeyUser(api_key), api_key
        self._note_use(request, api_key)

    @staticmethod
    def _note_use(request, api_key: ApiKey) -> None:
        now = timezone.now()
        # Write last-used at most once a minute per key, so busy scripts do not turn reads into writes.
        if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() > 60:
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now, last_used_ip=client_ip(request))
            key_cache.note_used(api_key.prefix, now)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class ConsoleSessionAuthentication(authentication.SessionAuthentication):
    """The console's cookie session; unsafe methods must carry the CSRF token."""
