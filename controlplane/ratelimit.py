"""The one limiter behind the login lockouts (console, ops site, invitations, password change), signups,
password resets and the API's rate limits.

Every attempt is counted before it is judged (increment, then compare): N parallel attempts cannot all read
"under the limit" before any of them is recorded, so at most ``limit`` of them are ever let through. A
window opens at a key's first attempt and lasts ``window`` seconds; then counting starts again.

Two stores, chosen by ``RATE_LIMIT_STORE``:
- ``redis``: one script (``SET key 0 EX window NX``, ``INCR``, ``PTTL`` per key, run atomically by Redis). A
  script rather than the same commands in a MULTI: one command each way instead of a dozen, which measured
  ~0.1 ms less per API request (redis-py's MULTI/EXEC path is heavy). Django's cache API is not used for
  counting: its Redis ``incr`` checks that the key exists and then runs ``INCRBY``, so a key expiring in
  between comes back without a TTL and would lock its owner out for good.
- ``database``: one ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` on ``RateCounter`` (SQLite ≥ 3.35 and
  PostgreSQL). Django's database cache is not used either: its ``incr`` is a read followed by a write.

The database store writes outside any transaction of its own; a caller inside ``transaction.atomic`` must
count before the block, or a rollback would undo the count with everything else.

While Redis cannot be reached (a restart, a failover), the Redis store counts in the database instead: limits
and lockouts still hold, and no request fails for want of its counter. Counts start again from zero in the
store that takes over, so an attacker gains at most one window's worth of attempts per switch.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection
from django.db.models import F
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from controlplane.models import RateCounter

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

_REDIS_PREFIX = "ratelimit:"
REDIS_UNREACHABLE = (RedisConnectionError, RedisTimeoutError)
_FALLBACK_LOG_EVERY_S = 60.0
_CONNECT_TIMEOUT_S = 2.0
_SOCKET_TIMEOUT_S = 3.0
_last_fallback_logged = [0.0]
_PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600,
            "d": 86400, "day": 86400}
# Decrement only a live, positive counter: DECR on a key that just expired would create it without a TTL.
_REFUND_SCRIPT = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current > 0 then return redis.call('DECR', KEYS[1]) end
return 0
"""


# KEYS: the counters, then the keys to read; ARGV: how many counters, then each counter's window in seconds.
# Returns count and milliseconds to live per counter, then each read's value (false: none). Scripts run
# atomically, as the MULTI they replace did; a key's window never restarts while it lives (SET NX).
_HITS_SCRIPT = """
local counters = tonumber(ARGV[1])
local out = {}
for i = 1, counters do
  redis.call('SET', KEYS[i], 0, 'EX', ARGV[i + 1], 'NX')
  out[#out + 1] = redis.call('INCR', KEYS[i])
  out[#out + 1] = redis.call('PTTL', KEYS[i])
end
for i = counters + 1, #KEYS do
  out[#out + 1] = redis.call('GET', KEYS[i])
end
return out
"""


# One statement, so it is atomic on its own: a closed window restarts at 1, an open one counts on. Standard
# SQL quoting, which SQLite and PostgreSQL both read; checked against the model by test_ratelimit.
_UPSERT_SQL = """
INSERT INTO "controlplane_ratecounter" ("key", "count", "window_ends") VALUES (%s, 1, %s)
ON CONFLICT ("key") DO UPDATE SET
  "count" = CASE WHEN "controlplane_ratecounter"."window_ends" <= %s THEN 1
                 ELSE "controlplane_ratecounter"."count" + 1 END,
  "window_ends" = CASE WHEN "controlplane_ratecounter"."window_ends" <= %s THEN excluded."window_ends"
                       ELSE "controlplane_ratecounter"."window_ends" END
RETURNING "count", "window_ends"
"""


@dataclass(frozen=True)
class Hit:
    """One counted attempt: the count including it, the limit, and the seconds until the window closes."""

    count: int
    limit: int
    retry_after: float

    @property
    def allowed(self) -> bool:
        return self.count <= self.limit


def parse_rate(rate: str) -> tuple[int, int]:
    """``"20/hour"`` → ``(20, 3600)``."""
    count, period = rate.split("/")
    return int(count), _PERIODS[period]


def hit(key: str, *, limit: int, window: int) -> Hit:
    """Counts one attempt against ``key`` and says whether it is within ``limit`` for the window."""
    if settings.RATE_LIMIT_STORE == "redis":
        try:
            count, retry_after = _redis_hit(key, window)
        except REDIS_UNREACHABLE as exc:
            _note_fallback(exc)
            count, retry_after = _database_hit(key, window)
    else:
        count, retry_after = _database_hit(key, window)
    return Hit(count=count, limit=limit, retry_after=max(retry_after, 0.0))


def hit_rate(scope: str, ident: str) -> Hit | None:
    """Counts an attempt against the rate ``API_RATE_LIMITS[scope]`` for ``ident`` (an IP, a credential);
    None when no rate is set for the scope."""
    rate = settings.API_RATE_LIMITS.get(scope)
    if not rate:
        return None
    limit, window = parse_rate(rate)
    return hit(f"throttle:{scope}:{ident}", limit=limit, window=window)


def hit_rates(attempts: list[tuple[str, str]], reads: list[str] | None = None
              ) -> tuple[list[Hit | None], list[bytes | None]]:
    """:func:`hit_rate` for several ``(scope, ident)`` at once, plus GETs of ``reads`` (Redis keys): in Redis one
    MULTI for all of them, so the API's request pays one round trip for its credential and IP limits and the
    check of its cached credential (``projects.key_cache``). ``reads`` need the Redis store."""
    limits: list[tuple[int, int] | None] = [
        parse_rate(rate) if (rate := settings.API_RATE_LIMITS.get(scope)) else None for scope, _ in attempts]
    keys = [(f"throttle:{scope}:{ident}", limit[1]) for (scope, ident), limit in zip(attempts, limits, strict=True)
            if limit is not None]
    values: list[bytes | None] = []
    if settings.RATE_LIMIT_STORE == "redis":
        try:
            counts, values = _redis_hits(keys, reads or [])
        except REDIS_UNREACHABLE as exc:
            _note_fallback(exc)
            # The reads are of Redis keys: unanswered, so their callers trust nothing they would have vouched for.
            counts, values = [_database_hit(key, window) for key, window in keys], [None] * len(reads or [])
    elif reads:
        raise ValueError("reads need RATE_LIMIT_STORE=redis")
    else:
        counts = [_database_hit(key, window) for key, window in keys]
    counted = iter(counts)
    hits: list[Hit | None] = []
    for limit in limits:
        if limit is None:
            hits.append(None)
        else:
            count, retry_after = next(counted)
            hits.append(Hit(count=count, limit=limit[0], retry_after=max(retry_after, 0.0)))
    return hits, values


def refund(key: str) -> None:
    """Takes back one attempt of the current window (e.g. a login that turned out to be right)."""
    if settings.RATE_LIMIT_STORE == "redis":
        try:
            _redis().eval(_REFUND_SCRIPT, 1, _REDIS_PREFIX + key)
            return
        except REDIS_UNREACHABLE as exc:
            _note_fallback(exc)  # the attempt was counted in the database, so it is taken back there
    RateCounter.objects.filter(key=key, count__gt=0, window_ends__gt=time.time()).update(count=F("count") - 1)


def reset(key: str) -> None:
    """Forgets every attempt against ``key`` (e.g. the lockout of an account whose password was reset)."""
    if settings.RATE_LIMIT_STORE == "redis":
        try:
            _redis().delete(_REDIS_PREFIX + key)
        except REDIS_UNREACHABLE as exc:
            _note_fallback(exc)
    # Also the database's: attempts counted there while Redis was away.
    RateCounter.objects.filter(key=key).delete()


def counters_purge() -> int:
    """Deletes database counters whose window closed; returns how many."""
    deleted, _ = RateCounter.objects.filter(window_ends__lte=time.time()).delete()
    return deleted


def _note_fallback(exc: Exception) -> None:
    # Once a minute per process, not once per request of an outage.
    now = time.monotonic()
    if now - _last_fallback_logged[0] >= _FALLBACK_LOG_EVERY_S:
        _last_fallback_logged[0] = now
        log.warning("Redis unreachable, rate limits counted in the database meanwhile: %s", exc)


# --- stores ---------------------------------------------------------------------------------------
@lru_cache(maxsize=4)
def _redis_client(url: str) -> redis.Redis:
    import redis

    # Bounded: a Redis that stalls (paused, a half-open connection, a failover to an address that drops packets)
    # must fall back to the database like one that refuses, not hold every request.
    return redis.Redis.from_url(url, socket_connect_timeout=_CONNECT_TIMEOUT_S, socket_timeout=_SOCKET_TIMEOUT_S)


def _redis() -> redis.Redis:
    return _redis_client(settings.REDIS_URL)


def redis_client() -> redis.Redis:
    """The client the limiter counts with (``REDIS_URL``), for what must share its round trips."""
    return _redis()


def _redis_hit(key: str, window: int) -> tuple[int, float]:
    return _redis_hits([(key, window)], [])[0][0]


def _redis_hits(keys: list[tuple[str, int]], reads: list[str]) -> tuple[list[tuple[int, float]], list[bytes | None]]:
    if not keys and not reads:
        return [], []
    replies = _hits_script(_redis())(keys=[*(_REDIS_PREFIX + key for key, _ in keys), *reads],
                                     args=[len(keys), *(window for _, window in keys)])
    counts = [(int(replies[i * 2]), (pttl if (pttl := replies[i * 2 + 1]) > 0 else window * 1000) / 1000)
              for i, (_, window) in enumerate(keys)]
    # A Lua false (GET of a missing key) comes back as None.
    return counts, list(replies[len(keys) * 2:])


@lru_cache(maxsize=4)
def _hits_script(client: redis.Redis) -> Any:
    # EVALSHA, loading the script again if Redis lost it (a restart, SCRIPT FLUSH).
    return client.register_script(_HITS_SCRIPT)


def _database_hit(key: str, window: int) -> tuple[int, float]:
    now = time.time()
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT_SQL, [key, now + window, now, now])
        count, window_ends = cursor.fetchone()
    return int(count), float(window_ends) - now

