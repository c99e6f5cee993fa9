"""The one limiter, on both stores: counted before judged, windows that close, refunds that cannot
outlive their window."""

from __future__ import annotations

import time

import pytest
from django.test import override_settings

from controlplane import ratelimit
from controlplane.models import RateCounter
from tests.support import run_in_parallel


@pytest.fixture(params=["redis", "database"])
def store(request):
    with override_settings(RATE_LIMIT_STORE=request.param):
        yield request.param


@pytest.mark.django_db
def test_counts_then_compares_and_says_when_the_window_closes(store):
    hits = [ratelimit.hit("t:a", limit=3, window=60) for _ in range(5)]
    assert [h.count for h in hits] == [1, 2, 3, 4, 5]
    assert [h.allowed for h in hits] == [True, True, True, False, False]
    assert 55 < hits[-1].retry_after <= 60
    assert ratelimit.hit("t:b", limit=3, window=60).count == 1  # keys are counted apart


@pytest.mark.django_db
def test_a_closed_window_starts_again(store):
    assert ratelimit.hit("t:w", limit=1, window=1).allowed
    assert not ratelimit.hit("t:w", limit=1, window=1).allowed
    time.sleep(1.1)
    hit = ratelimit.hit("t:w", limit=1, window=1)
    assert hit.count == 1 and hit.allowed


@pytest.mark.django_db
def test_refund_and_reset(store):
    for _ in range(3):
        ratelimit.hit("t:r", limit=3, window=60)
    ratelimit.refund("t:r")
    assert ratelimit.hit("t:r", limit=3, window=60).count == 3
    ratelimit.reset("t:r")
    assert ratelimit.hit("t:r", limit=3, window=60).count == 1
    # A refund never goes below zero nor brings a closed window back.
    ratelimit.reset("t:z")
    ratelimit.refund("t:z")
    assert ratelimit.hit("t:z", limit=3, window=60).count == 1


@pytest.mark.django_db
def test_database_counters_are_purged_once_closed():
    with override_settings(RATE_LIMIT_STORE="database"):
        ratelimit.hit("t:old", limit=1, window=1)
        ratelimit.hit("t:new", limit=1, window=600)
        time.sleep(1.1)
        assert ratelimit.counters_purge() == 1
        assert list(RateCounter.objects.values_list("key", flat=True)) == ["t:new"]


@pytest.mark.django_db(transaction=True)
def test_parallel_hits_get_distinct_counts(store):
    counts = run_in_parallel(25, lambda _: ratelimit.hit("t:p", limit=5, window=60).count)
    assert sorted(counts) == list(range(1, 26))


def test_the_raw_upsert_names_the_model_s_table_and_columns():
    assert RateCounter._meta.db_table == "controlplane_ratecounter"
    assert {field.column for field in RateCounter._meta.fields} == {"key", "count", "window_ends"}


@pytest.mark.django_db
def test_with_redis_unreachable_limits_are_counted_in_the_database_and_still_hold(caplog):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]  # closed again before use: nothing listens there
    with override_settings(RATE_LIMIT_STORE="redis", REDIS_URL=f"redis://127.0.0.1:{dead_port}/0"):
        hits = [ratelimit.hit("t:down", limit=2, window=60) for _ in range(3)]
        assert [h.allowed for h in hits] == [True, True, False]
        ratelimit.refund("t:down")
        (batched,), reads = ratelimit.hit_rates([("ip", "203.0.113.9")], ["a-redis-key"])
        ratelimit.reset("t:down")
    assert RateCounter.objects.get(key="throttle:ip:203.0.113.9").count == 1 and batched.count == 1
    assert reads == [None]  # unanswered: whoever asked trusts nothing it would have vouched for
    assert not RateCounter.objects.filter(key="t:down").exists()
    assert "Redis unreachable" in caplog.text


@pytest.mark.django_db
def test_a_redis_that_stalls_falls_back_within_seconds_too():
    """Listening but never answering (paused, half-open): the bounded socket timeout hands over to the database."""
    import socket

    with socket.socket() as stalled:
        stalled.bind(("127.0.0.1", 0))
        stalled.listen(8)  # the kernel completes the handshake; nobody ever reads or writes
        port = stalled.getsockname()[1]
        with override_settings(RATE_LIMIT_STORE="redis", REDIS_URL=f"redis://127.0.0.1:{port}/0"):
            hit = ratelimit.hit("t:stalled", limit=2, window=60)  # without the timeout: waits forever
    assert hit.count == 1 and RateCounter.objects.get(key="t:stalled").count == 1
