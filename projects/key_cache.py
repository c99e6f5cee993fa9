"""API keys resolved once per process and reused, instead of a four-table query on every request (issue 15).

A key's row, its organization, its creator's membership and user, and both project limits are kept in this
process, with the organization's **credentials token** read when they were loaded. Every request still compares
the secret's hash, checks revocation, expiry and the creator's state on a fresh copy, and reads the current token
from the shared cache (one Redis GET); an entry whose token changed is loaded again from the database.

The token changes (a new random value) whenever anything a key's rights depend on is written: a key, a
membership, a project limit of either, a user (active or not), the organization. It is changed by model signals
rather than by each service, so no write path (services, the admin, cascades) can forget it: not business logic,
only the cache's invalidation. It is changed at once and again after the commit: a request that loads the old row
while the writing transaction is open caches it under the first new token, which the second one then retires.
Writes by ``QuerySet.update()`` send no signal; none of these models' authorization fields is written that way
(``last_used_at`` is, and it does not matter here), and an entry is reloaded after ``MAX_AGE_S`` regardless.

The tokens live in the rate limiter's Redis (Django's cache without Redis). API views read the token in the one
Redis MULTI that also counts the request's rate limits (``controlplane.api.throttling.defer_read``), before the
view runs; a stale entry is then replaced by the row from the database, or the request refused.

The store unreachable: no entry is trusted, every key is read from the database.
"""

from __future__ import annotations

import copy
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Model, prefetch_related_objects
from django.db.models.signals import m2m_changed, post_delete, post_save

from controlplane import ratelimit
from projects.models import ApiKey, Membership, Organization, User

_M = TypeVar("_M", bound=Model)

logger = logging.getLogger(__name__)

#: An entry is reloaded after this long even if no token changed (a write that bypassed the signals).
MAX_AGE_S = 60.0
MAX_ENTRIES = 10_000
TOKEN_TTL_S = 24 * 3600
_TOKEN_PREFIX = "credentials-token:"


@dataclass(frozen=True)
class _Entry:
    token: str
    loaded_at: float
    api_key: ApiKey  # a template: copied for each request, never handed out


_entries: dict[str, _Entry] = {}


def api_key_by_prefix(prefix: str) -> ApiKey | None:
    """The key with this prefix, its organization and creator (membership and user) attached and its project
    limits prefetched: a copy of the cached one while the organization's token is unchanged, else from the
    database."""
    entry = _entries.get(prefix)
    organization_id = entry.api_key.organization_id if entry is not None else None  # a key never moves
    if entry is not None and time.monotonic() - entry.loaded_at < MAX_AGE_S:
        token = _current_token(entry.api_key.organization_id, create=False)
        if token is not None and token == entry.token:
            return _copy(entry.api_key)
    if organization_id is None:
        first = _load(prefix)
        if first is None:
            return None  # unknown prefixes are not remembered: nothing to invalidate, nothing to fill up
        organization_id = first.organization_id
    # The token is read before the row that is cached under it: a write committed after this read changes the
    # token, and so retires the entry at the next request.
    token = _current_token(organization_id, create=True)
    api_key = _load(prefix)
    if api_key is None or token is None:
        return api_key
    if len(_entries) >= MAX_ENTRIES:
        _entries.clear()
    _entries[prefix] = _Entry(token=token, loaded_at=time.monotonic(), api_key=api_key)
    return _copy(api_key)


@dataclass(frozen=True)
class Unverified:
    """A copy of a cached key whose organization token has not been read yet: the caller reads ``token_key``
    (in a round trip it makes anyway) and trusts the key only if :meth:`is_current`."""

    api_key: ApiKey
    token_key: str
    token: str

    def is_current(self, value: bytes | str | None) -> bool:
        return value is not None and _decode(value) == self.token


def api_key_unverified(prefix: str) -> Unverified | None:
    """The cached key for a caller that checks the token itself; None when there is no such entry (or the
    tokens are not in Redis): then :func:`api_key_by_prefix`."""
    entry = _entries.get(prefix)
    if entry is None or time.monotonic() - entry.loaded_at >= MAX_AGE_S or not settings.REDIS_URL:
        return None
    return Unverified(api_key=_copy(entry.api_key), token_key=token_key(entry.api_key.organization_id),
                      token=entry.token)


def note_used(prefix: str, when: Any) -> None:
    """Keeps the cached ``last_used_at`` in step with the write the authentication just made, so the next
    requests do not write it again within the minute."""
    entry = _entries.get(prefix)
    if entry is not None:
        entry.api_key.last_used_at = when


def forget_all() -> None:
    _entries.clear()


def _load(prefix: str) -> ApiKey | None:
    # No ORDER BY (the prefix is unique); limits are prefetched only where there is one to read.
    found = list(ApiKey.objects.select_related("organization", "created_by__user").filter(prefix=prefix)[:1])
    if not found:
        return None
    api_key = found[0]
    for grant in (api_key, api_key.created_by):
        if grant is not None and grant.limited_to_projects:
            prefetch_related_objects([grant], "projects")
    return api_key


def _copy(template: ApiKey) -> ApiKey:
    """Fresh instances for one request, so nothing a request does to them (a service assigning a field and
    failing validation) reaches the next request."""
    api_key = _shallow_copy(template)
    api_key.organization = _shallow_copy(template.organization)
    if template.created_by is not None:
        creator = _shallow_copy(template.created_by)
        creator.user = _shallow_copy(template.created_by.user)
        api_key.created_by = creator
    return api_key


def _shallow_copy(template: _M) -> _M:
    """What ``copy.copy`` makes of a model instance (its fields, its own state and caches of related objects and
    prefetched rows), without the pickle protocol ``copy.copy`` goes through (a model lookup by app label each)."""
    instance = template.__class__.__new__(template.__class__)
    instance.__dict__.update(template.__dict__)
    instance._state = copy.copy(template._state)
    instance._state.fields_cache = dict(template._state.fields_cache)
    prefetched = template.__dict__.get("_prefetched_objects_cache")
    if prefetched is not None:
        instance._prefetched_objects_cache = dict(prefetched)  # type: ignore[attr-defined]
    return instance


# --- the organization's credentials token --------------------------------------------------------------------
def _redis() -> Any:
    """Tokens live in the limiter's Redis when there is one (so the API reads them in its rate-limit round
    trip), else in Django's cache (the embedded default's database cache)."""
    return ratelimit.redis_client() if settings.REDIS_URL else None


def token_key(organization_id: str) -> str:
    return _TOKEN_PREFIX + organization_id


def _decode(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _current_token(organization_id: str, *, create: bool) -> str | None:
    key = token_key(organization_id)
    try:
        client = _redis()
        if client is None:
            if create:
                cache.add(key, secrets.token_hex(8), TOKEN_TTL_S)
            return cache.get(key)
        token = client.get(key)
        if token is None and create:
            client.set(key, secrets.token_hex(8), ex=TOKEN_TTL_S, nx=True)
            token = client.get(key)
    except Exception:  # the shared store is down: trust no entry
        logger.warning("credentials token unreadable; API keys are read from the database", exc_info=True)
        return None
    return _decode(token)


def credentials_changed(organization_id: str | None) -> None:
    """Retires every cached key of the organization, in every process (this one included: its entries are
    checked against the shared token like any other's): now, and again after the commit."""
    if not organization_id:
        return
    _retire(organization_id)
    transaction.on_commit(lambda: _retire(organization_id))


def _retire(organization_id: str) -> None:
    try:
        client = _redis()
        if client is None:
            cache.set(token_key(organization_id), secrets.token_hex(8), TOKEN_TTL_S)
        else:
            client.set(token_key(organization_id), secrets.token_hex(8), ex=TOKEN_TTL_S)
    except Exception:
        logger.warning("credentials token not changed; cached keys live up to %s s", MAX_AGE_S, exc_info=True)


# --- what changes a key's rights --------------------------------------------------------------------------------
def _on_grant(sender: type[Model], instance: Model, **kwargs: Any) -> None:
    credentials_changed(getattr(instance, "organization_id", None))


def _on_organization(sender: type[Model], instance: Organization, **kwargs: Any) -> None:
    credentials_changed(instance.pk)


def _on_user(sender: type[Model], instance: User, update_fields: Any = None, **kwargs: Any) -> None:
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return  # every console login saves this; it changes no right
    for organization_id in Membership.objects.filter(user_id=instance.pk).values_list("organization_id", flat=True):
        credentials_changed(organization_id)


def connect() -> None:
    for model in (ApiKey, Membership):
        post_save.connect(_on_grant, sender=model, dispatch_uid=f"key_cache.{model.__name__}.save")
        post_delete.connect(_on_grant, sender=model, dispatch_uid=f"key_cache.{model.__name__}.delete")
        # instance is the grant, or a Project when changed from the project's side: both have organization_id.
        m2m_changed.connect(_on_grant, sender=model.projects.through, dispatch_uid=f"key_cache.{model.__name__}.m2m")
    post_save.connect(_on_organization, sender=Organization, dispatch_uid="key_cache.organization.save")
    post_delete.connect(_on_organization, sender=Organization, dispatch_uid="key_cache.organization.delete")
    post_save.connect(_on_user, sender=User, dispatch_uid="key_cache.user.save")
