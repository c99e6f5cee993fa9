from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from hypothesis import given
from hypothesis import strategies as st

from billing.metering import Transition, billable_seconds, metered_seconds
from billing.models import UsageRecord
from billing.services.usage import METER_CHUNK_HOURS, usage_meter_hour, usage_meter_range, usage_meter_recent
from billing.tests.factories import record_event
from deployments.lifecycle import BILLABLE, STORAGE_BILLABLE
from deployments.tests.factories import DeploymentFactory

H = datetime(2026, 3, 10, 12, tzinfo=UTC)
STATUSES = ["provisioning", "running", "scaling", "stopping", "stopped", "starting", "failed", "deleted"]


@given(st.lists(st.tuples(st.integers(-7200, 7199), st.sampled_from(STATUSES), st.sampled_from(["a", "b"])),
                max_size=12),
       st.lists(st.tuples(st.integers(-7200, 7199), st.integers(1, 7200)), max_size=3))
def test_metered_seconds_equal_billable_intervals_per_rate(raw, raw_terms):
    events = [Transition(H + timedelta(seconds=s), status, spec) for s, status, spec in raw]
    terms = [(H + timedelta(seconds=s), H + timedelta(seconds=s + length)) for s, length in raw_terms]
    result = metered_seconds(events, start=H, end=H + timedelta(hours=1), annual_terms=terms)
    # Brute force: the state in force at each second of the hour, and the rate it is metered at.
    ordered = sorted(events, key=lambda e: e.at)
    expected: dict[tuple[str, str], int] = {}
    for second in range(3600):
        moment = H + timedelta(seconds=second)
        state = None
        for event in ordered:
            if event.at <= moment:
                state = event
        prepaid = any(a <= moment < b for a, b in terms)  # a prepaid term is metered at neither rate
        if state is None or prepaid:
            continue
        rate = "running" if state.to_status in BILLABLE else "stopped" if state.to_status in STORAGE_BILLABLE else None
        if rate is not None:
            expected[(state.spec_id, rate)] = expected.get((state.spec_id, rate), 0) + 1
    assert result == expected
    assert sum(result.values()) <= 3600
    # The running-rate projection is what hourly billing always was.
    assert billable_seconds(events, start=H, end=H + timedelta(hours=1), annual_terms=terms) == {
        spec: secs for (spec, rate), secs in expected.items() if rate == "running"}


def test_stopped_time_is_metered_at_the_stopped_rate():
    events = [Transition(H - timedelta(hours=2), "running", "small"),
              Transition(H + timedelta(minutes=10), "stopping", "small"),
              Transition(H + timedelta(minutes=12), "stopped", "small"),
              Transition(H + timedelta(minutes=40), "starting", "small"),
              Transition(H + timedelta(minutes=45), "running", "small")]
    # stopping and starting are free; the stop splits the hour into two rates.
    assert metered_seconds(events, start=H, end=H + timedelta(hours=1)) == {
        ("small", "running"): 600 + 900, ("small", "stopped"): 1680}
    switched = H + timedelta(minutes=30)
    assert metered_seconds(events, start=H, end=H + timedelta(hours=1),
                           annual_terms=[(switched, switched + timedelta(days=365))]) == {
        ("small", "running"): 600, ("small", "stopped"): 1080}


def test_scale_splits_the_hour_and_annual_stops_it():
    events = [Transition(H - timedelta(hours=2), "running", "small"),
              Transition(H + timedelta(minutes=10), "scaling", "small"),
              Transition(H + timedelta(minutes=20), "running", "big")]
    assert billable_seconds(events, start=H, end=H + timedelta(hours=1)) == {"small": 1200, "big": 2400}
    year = timedelta(days=365)
    switched = H + timedelta(minutes=30)
    assert billable_seconds(events, start=H, end=H + timedelta(hours=1),
                            annual_terms=[(switched, switched + year)]) == {"small": 1200, "big": 600}
    assert billable_seconds(events, start=H, end=H + timedelta(hours=1),
                            annual_terms=[(H - timedelta(days=1), H + year)]) == {}
    # A term that ended (not renewed) at minute 50: hourly metering resumes at that second.
    assert billable_seconds(events, start=H, end=H + timedelta(hours=1),
                            annual_terms=[(H - year, H + timedelta(minutes=50))]) == {"big": 600}




@pytest.mark.django_db
def test_meter_hour_is_idempotent_and_handles_late_events():
    deployment = DeploymentFactory(created_at=H - timedelta(days=1))
    record_event(deployment, "running", H - timedelta(days=1))
    record_event(deployment, "scaling", H + timedelta(minutes=15))
    record_event(deployment, "running", H + timedelta(minutes=30), spec_id="basic-5k")
    assert usage_meter_hour(hour_start=H) == 2
    rows = {r.spec_id: r.seconds for r in UsageRecord.objects.filter(deployment=deployment, hour_start=H)}
    assert rows == {"basic-1k": 1800, "basic-5k": 1800}
    assert usage_meter_hour(hour_start=H) == 0  # rerun: nothing changes
    # A late event (recorded after the hour was metered): re-metering corrects the hour.
    record_event(deployment, "stopping", H + timedelta(minutes=45), spec_id="basic-5k")
    assert usage_meter_hour(hour_start=H) == 1
    rows = {r.spec_id: r.seconds for r in UsageRecord.objects.filter(deployment=deployment, hour_start=H)}
    assert rows == {"basic-1k": 1800, "basic-5k": 900}
    assert UsageRecord.objects.filter(deployment=deployment).count() == 2
    # The following hours: stopping is free.
    assert usage_meter_hour(hour_start=H + timedelta(hours=1)) == 0


@pytest.mark.django_db
def test_stopped_hours_are_separate_rows_at_the_stopped_price_and_remetering_is_a_no_op():
    deployment = DeploymentFactory(created_at=H - timedelta(days=1))
    record_event(deployment, "running", H - timedelta(days=1))
    record_event(deployment, "stopping", H + timedelta(minutes=20))
    record_event(deployment, "stopped", H + timedelta(minutes=30))
    assert usage_meter_hour(hour_start=H) == 2
    assert usage_meter_hour(hour_start=H + timedelta(hours=1)) == 1
    price = deployment.spec.prices.get(currency=deployment.organization.currency)
    assert price.stopped_hourly > 0 and price.stopped_hourly < price.hourly / 10
    rows = {(r.hour_start, r.rate): (r.seconds, r.hourly_price)
            for r in UsageRecord.objects.filter(deployment=deployment)}
    assert rows == {(H, "running"): (1200, price.hourly), (H, "stopped"): (1800, price.stopped_hourly),
                    (H + timedelta(hours=1), "stopped"): (3600, price.stopped_hourly)}
    # Rerun: nothing changes, nothing is duplicated.
    assert usage_meter_hour(hour_start=H) == 0
    assert usage_meter_hour(hour_start=H + timedelta(hours=1)) == 0
    assert UsageRecord.objects.filter(deployment=deployment).count() == 3
    # A late start: the hour is recomputed, the stopped row shrinks, a running row appears.
    record_event(deployment, "starting", H + timedelta(hours=1, minutes=30))
    record_event(deployment, "running", H + timedelta(hours=1, minutes=35))
    assert usage_meter_hour(hour_start=H + timedelta(hours=1)) == 2
    later = {r.rate: r.seconds for r in UsageRecord.objects.filter(deployment=deployment,
                                                                  hour_start=H + timedelta(hours=1))}
    assert later == {"stopped": 1800, "running": 1500}
    assert usage_meter_hour(hour_start=H + timedelta(hours=1)) == 0


@pytest.mark.django_db
def test_meter_recent_meters_closed_hours_only():
    deployment = DeploymentFactory(created_at=H - timedelta(days=1))
    record_event(deployment, "running", H - timedelta(days=1))
    with time_machine.travel(H + timedelta(hours=3, minutes=5), tick=False):
        usage_meter_recent(hours=3)
    hours = sorted(UsageRecord.objects.filter(deployment=deployment).values_list("hour_start", flat=True))
    assert hours == [H, H + timedelta(hours=1), H + timedelta(hours=2)]
    assert all(r.seconds == 3600 for r in UsageRecord.objects.filter(deployment=deployment))


def test_hour_start_must_be_on_the_hour():
    with pytest.raises(ValueError):
        usage_meter_hour(hour_start=H + timedelta(minutes=1))


@pytest.mark.django_db
def test_metering_a_range_equals_metering_each_hour_across_chunks():
    deployment = DeploymentFactory(created_at=H - timedelta(days=1))
    record_event(deployment, "running", H - timedelta(days=1))
    record_event(deployment, "scaling", H + timedelta(hours=5, minutes=10))
    record_event(deployment, "running", H + timedelta(hours=5, minutes=20), spec_id="basic-5k")
    record_event(deployment, "stopping", H + timedelta(hours=23, minutes=59, seconds=30), spec_id="basic-5k")
    record_event(deployment, "stopped", H + timedelta(hours=24, seconds=10), spec_id="basic-5k")
    record_event(deployment, "deleting", H + timedelta(hours=40, minutes=1), spec_id="basic-5k")
    hours = METER_CHUNK_HOURS + 30  # crosses a chunk boundary
    written = usage_meter_range(start=H, end=H + timedelta(hours=hours))

    def snapshot():
        return sorted(UsageRecord.objects.values_list("hour_start", "spec_id", "rate", "seconds", "hourly_price"))

    by_range = snapshot()
    assert written == len(by_range) and usage_meter_range(start=H, end=H + timedelta(hours=hours)) == 0
    UsageRecord.objects.all().delete()
    for n in range(hours):
        usage_meter_hour(hour_start=H + timedelta(hours=n))
    assert snapshot() == by_range
    assert sum(r[3] for r in by_range if r[2] == "stopped") == 16 * 3600 - 10 + 60
    with pytest.raises(ValueError):
        usage_meter_range(start=H, end=H + timedelta(minutes=30))


def _expected_rows(deployments, hours: int) -> list[tuple]:
    """Hour by hour, straight from the pure function over each deployment's whole history and terms."""
    from billing.models import AnnualCharge
    from deployments.models import DeploymentEvent, SpecPrice

    prices = {(p.spec_id, p.currency): p for p in SpecPrice.objects.all()}
    expected = []
    for deployment in deployments:
        if deployment.deleted_at is not None and deployment.deleted_at < H:
            continue
        events = [Transition(e.created_at, e.to_status, e.spec_id)
                  for e in DeploymentEvent.objects.filter(deployment=deployment).order_by("created_at", "id")]
        terms = list(AnnualCharge.objects.filter(deployment=deployment, kind="term").values_list("term_start",
                                                                                               "term_end"))
        currency = deployment.organization.currency
        for n in range(hours):
            hour = H + timedelta(hours=n)
            if deployment.created_at >= hour + timedelta(hours=1):
                continue
            for (spec_id, rate), secs in metered_seconds(events, start=hour, end=hour + timedelta(hours=1),
                                                         annual_terms=terms).items():
                price = prices[(spec_id, currency)]
                expected.append((deployment.id, hour, spec_id, rate, secs,
                                 price.stopped_hourly if rate == "stopped" else price.hourly))
    return sorted(expected)


@pytest.mark.django_db
@pytest.mark.parametrize("seed", range(4))
def test_range_metering_equals_the_pure_function_hour_by_hour_for_random_histories(seed):
    """The range path (whole steady hours without calling metered_seconds, rows written in bulk) writes exactly
    the rows the pure function gives hour by hour; late events re-metered change exactly what they should."""
    import random

    from billing.models import AnnualCharge, Subscription

    rng = random.Random(seed)
    hours = METER_CHUNK_HOURS + 20
    span = hours * 3600
    deployments = []
    for n in range(6):
        deployment = DeploymentFactory(created_at=H - timedelta(days=1))
        deployments.append(deployment)
        if n == 0:
            continue  # created, never an event: nothing metered
        moments = {H - timedelta(seconds=rng.randint(0, 7200))}
        for _ in range(rng.randint(0, 12)):
            at = H + timedelta(seconds=rng.randint(-3600, span + 3600))
            if rng.random() < 0.3:  # on the hour: the boundary case
                at = at.replace(minute=0, second=0, microsecond=0)
            moments.add(at)  # distinct: two events of one deployment never share a microsecond
        for at in sorted(moments):
            record_event(deployment, rng.choice(STATUSES), at, spec_id=rng.choice(["basic-1k", "basic-5k"]))
        if rng.random() < 0.5:
            term_start = H + timedelta(seconds=rng.randint(-7200, span))
            term_end = term_start + timedelta(seconds=rng.choice([rng.randint(1, 3 * 3600), 365 * 86400]))
            subscription = Subscription.objects.create(organization=deployment.organization, deployment=deployment,
                                                       mode="annual", term_start=term_start, term_end=term_end)
            AnnualCharge.objects.create(organization=deployment.organization, subscription=subscription,
                                        deployment=deployment, spec_id="basic-1k", amount=1, currency="USD",
                                        term_start=term_start, term_end=term_end)

    def written():
        return sorted(UsageRecord.objects.values_list("deployment_id", "hour_start", "spec_id", "rate", "seconds",
                                                      "hourly_price"))

    end = H + timedelta(hours=hours)
    count = usage_meter_range(start=H, end=end)
    assert written() == _expected_rows(deployments, hours)
    assert count == UsageRecord.objects.count()
    assert usage_meter_range(start=H, end=end) == 0
    # Late events: re-metering updates, inserts and deletes exactly what the new history says.
    before = set(written())
    for deployment in rng.sample(deployments[1:], 3):
        record_event(deployment, rng.choice(STATUSES), H + timedelta(seconds=rng.randint(0, span - 1),
                                                                     microseconds=rng.randint(1, 999_999)),
                     spec_id=rng.choice(["basic-1k", "pro-1k"]))
    changed = usage_meter_range(start=H, end=end)
    after = written()
    assert after == _expected_rows(deployments, hours)
    keys = {row[:4]: row for row in after}
    old_keys = {row[:4]: row for row in before}
    assert changed == (len(keys.keys() - old_keys.keys()) + len(old_keys.keys() - keys.keys())
                       + sum(1 for k in keys.keys() & old_keys.keys() if keys[k] != old_keys[k]))
    assert usage_meter_range(start=H, end=end) == 0
