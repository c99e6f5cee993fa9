"""Delivery attempts: claimed in batches, sent on a bounded thread pool, their outcomes stored per batch.

One durable commit per delivery held webhook delivery to ~112/s against ~1,100/s for a bare HTTP loop (issue 15).
So ``notifications_send`` claims due notifications a batch at a time (one conditional UPDATE over rows locked
with SKIP LOCKED, so concurrent senders take disjoint batches), sends them on ``NOTIFICATION_SEND_CONCURRENCY``
threads with keep-alive connections, and stores the outcomes of up to ``NOTIFICATION_SEND_BATCH`` attempts in one
transaction (one UPDATE per distinct outcome). ``notification_attempt`` is the same path for one notification.

Nothing is held across a send but the claim (``claimed_until``): a sender killed mid-batch leaves its claims
until they expire, then another sender takes the notifications over. Only the attempts whose outcome was stored
count: one sent but not yet stored when the sender died is sent again, with the same ``webhook-id`` (receivers
de-duplicate on it); one whose outcome was stored is never sent again.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from alerts import delivery
from alerts.models import AlertChannel, ChannelType, Notification, NotificationStatus
from controlplane import outbound, telemetry

logger = logging.getLogger(__name__)

#: How long a PagerDuty event over the per-key rate waits before its attempt.
PAGERDUTY_THROTTLE_S = 15.0


@dataclass
class Job:
    """A claimed notification: ``claim`` (its ``claimed_until``) proves it is still ours when the outcome is stored."""

    notification: Notification
    channel: AlertChannel
    claim: datetime
    host: str = ""
    started: float = 0.0


@dataclass
class Outcome:
    """What became of a job: an attempt's ``result``; or no attempt: failed for ``fail_reason``, deferred by
    ``defer_s``, or (none of them) released unsent."""

    job: Job
    result: delivery.DeliveryResult | None = None
    fail_reason: str = ""
    defer_s: float | None = None


def attempt_outcome(notification: Notification, result: delivery.DeliveryResult, *, final: bool, now: datetime
                    ) -> tuple[dict[str, Any], float | None]:
    """The fields an attempt's outcome changes, and the delay before the next attempt (None when done)."""
    attempts = notification.attempts + 1
    fields: dict[str, Any] = {"attempts": attempts, "status_code": result.status_code,
                              "last_error": result.error[:500]}
    delay: float | None = None
    if result.delivered:
        fields.update(status=NotificationStatus.DELIVERED, delivered_at=now, next_attempt_at=None)
    else:
        schedule = settings.NOTIFICATION_RETRY_SCHEDULE_S
        if result.transient and not final and attempts <= len(schedule):
            delay = float(schedule[attempts - 1])
            if result.retry_after_s is not None:
                delay = max(delay, min(result.retry_after_s, 24 * 3600.0))
            fields.update(status=NotificationStatus.PENDING, next_attempt_at=now + timedelta(seconds=delay))
        else:
            fields.update(status=NotificationStatus.FAILED, next_attempt_at=None)
    telemetry.delivery_outcome_recorded(channel_type=notification.channel.type, outcome=fields["status"])
    return fields, delay


def gone_webhooks_disable(channel_ids: set[str], now: datetime) -> None:
    """Disables the webhook channels whose endpoint answered 410 Gone."""
    if channel_ids:
        AlertChannel.objects.filter(pk__in=channel_ids, type=ChannelType.WEBHOOK).update(
            enabled=False, disabled_reason="The endpoint answered 410 Gone.", updated_at=now)


# --- claims --------------------------------------------------------------------------------------------------
def _unclaimed(now: datetime) -> Q:
    return Q(claimed_until__isnull=True) | Q(claimed_until__lte=now)


def jobs_claim(*, which: Q, limit: int, now: datetime) -> list[Job]:
    """Claims up to ``limit`` pending, unclaimed notifications matching ``which``, oldest due first."""
    until = now + timedelta(seconds=settings.NOTIFICATION_CLAIM_S)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # A claim stands in for a row lock, and a row lock never survives a database crash either: a claim lost
            # with the last few commits before one leaves the notification pending, to be taken again. So it skips
            # the WAL flush; the outcomes are stored durably.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        # SKIP LOCKED: a concurrent sender's batch is left to it instead of waited for; the lock lasts until the
        # UPDATE below commits the claim. (SQLite has no row locks; its transactions take the write lock first.)
        rows = list(Notification.objects.filter(which, _unclaimed(now), status=NotificationStatus.PENDING)
                    .order_by("next_attempt_at", "id").select_for_update(skip_locked=True, of=("self",))[:limit])
        if not rows:
            return []
        Notification.objects.filter(pk__in=[row.pk for row in rows]).update(claimed_until=until)
    # Each channel's secrets are decrypted once per claim, not once per notification.
    channels = AlertChannel.objects.in_bulk({row.channel_id for row in rows})
    jobs = []
    for row in rows:
        if row.channel_id not in channels:  # deleted since (its notifications with it)
            continue
        row.claimed_until = until
        row.channel = channels[row.channel_id]
        jobs.append(Job(row, row.channel, until, host=_destination(row.channel)))
    return jobs


def _destination(channel: AlertChannel) -> str:
    """The server a channel's deliveries go to (host and port): the unit of the per-host limit."""
    if channel.type == ChannelType.EMAIL:
        return "smtp"
    url = channel.config.get("url", "") if channel.type == ChannelType.WEBHOOK else settings.PAGERDUTY_EVENTS_URL
    try:
        parts = urlsplit(url)
        return f"{parts.hostname}:{parts.port or parts.scheme}"
    except ValueError:  # refused by the outbound client when sent; any key will do until then
        return url


def jobs_screen(jobs: list[Job], *, now: datetime, pagerduty_in_flight: Counter[str] | None = None
                ) -> tuple[list[Job], list[Outcome]]:
    """Splits claimed jobs into those to send and the outcomes of those not to: a disabled channel fails its
    notification unsent; PagerDuty accepts about ``PAGERDUTY_EVENTS_PER_MINUTE`` events a minute per routing key,
    so beyond that (counting the events delivered in the last minute and ``pagerduty_in_flight``, sent but not
    yet stored) an event waits instead of being refused."""
    pagerduty = {job.channel.id for job in jobs if job.channel.type == ChannelType.PAGERDUTY and job.channel.enabled}
    used: Counter[str] = Counter(pagerduty_in_flight or {})
    if pagerduty:
        used.update(dict(Notification.objects.filter(channel_id__in=pagerduty, delivered_at__gte=now - timedelta(
            seconds=60)).values_list("channel_id").annotate(n=Count("id")).values_list("channel_id", "n")))
    send, outcomes = [], []
    for job in jobs:
        if not job.channel.enabled:
            outcomes.append(Outcome(job, fail_reason=f"channel disabled: {job.channel.disabled_reason}"))
        elif job.channel.id in pagerduty and used[job.channel.id] >= settings.PAGERDUTY_EVENTS_PER_MINUTE:
            outcomes.append(Outcome(job, defer_s=PAGERDUTY_THROTTLE_S))
        else:
            if job.channel.id in pagerduty:
                used[job.channel.id] += 1
            send.append(job)
    return send, outcomes


def _fields(outcome: Outcome, now: datetime) -> tuple[dict[str, Any], float | None]:
    if outcome.result is not None:
        return attempt_outcome(outcome.job.notification, outcome.result, final=False, now=now)
    if outcome.fail_reason:
        return {"status": NotificationStatus.FAILED, "next_attempt_at": None,
                "last_error": outcome.fail_reason[:500]}, None
    if outcome.defer_s is not None:
        return {"next_attempt_at": now + timedelta(seconds=outcome.defer_s)}, outcome.defer_s
    return {}, None


def outcomes_store(outcomes: list[Outcome]) -> dict[str, float | None]:
    """Stores outcomes in one transaction and releases their claims, each only if its claim is still ours (it
    expired and another sender took over: theirs is the attempt of record). Returns, per stored notification,
    the delay before its next attempt (None when done)."""
    if not outcomes:
        return {}
    now = timezone.now()
    stored: dict[str, float | None] = {}
    with transaction.atomic():
        # Locked until commit: a claim that is ours now stays ours until the outcome is written.
        claims = dict(Notification.objects.filter(pk__in=[o.job.notification.id for o in outcomes])
                      .select_for_update().values_list("id", "claimed_until"))
        groups: dict[tuple, list[str]] = {}
        gone: set[str] = set()
        for outcome in outcomes:
            notification_id = outcome.job.notification.id
            if claims.get(notification_id) != outcome.job.claim:
                continue
            fields, stored[notification_id] = _fields(outcome, now)
            # A batch's outcomes are mostly alike (delivered, same status): one UPDATE per distinct outcome.
            groups.setdefault(tuple(sorted(fields.items())), []).append(notification_id)
            if outcome.result is not None and outcome.result.gone:
                gone.add(outcome.job.channel.id)
        for key, ids in groups.items():
            Notification.objects.filter(pk__in=ids).update(**dict(key), claimed_until=None)
        gone_webhooks_disable(gone, now)
    return stored


def _send(job: Job, session: outbound.Session | None) -> delivery.DeliveryResult:
    try:
        return delivery.deliver(job.channel, job.notification, session)
    except Exception:  # one broken delivery must not take the rest of the batch down; retried like a 5xx
        logger.exception("delivery of %s failed unexpectedly", job.notification.id)
        return delivery.DeliveryResult(False, None, "the delivery failed unexpectedly, will retry", transient=True)


def notification_attempt(*, notification_id: str) -> float | None:
    """One delivery attempt of one pending notification, whether due or not (a channel's queued test, a task of
    the per-notification era). Returns the delay before a retry, or None when done (delivered, failed, gone, or
    not pending or claimed by another sender: a duplicate is a no-op)."""
    now = timezone.now()
    jobs = jobs_claim(which=Q(pk=notification_id), limit=1, now=now)
    send, outcomes = jobs_screen(jobs, now=now)
    outcomes += [Outcome(job, result=_send(job, None)) for job in send]
    return outcomes_store(outcomes).get(notification_id)


# --- the batch sender ------------------------------------------------------------------------------------------
@dataclass
class _Sender:
    """One run of ``notifications_send``; see there."""

    concurrency: int
    per_host: int
    batch: int
    flush_s: float
    slow_s: float
    running: dict[Future, Job] = field(default_factory=dict)
    waiting: dict[str, deque[Job]] = field(default_factory=dict)  # claimed, not started: per host
    host_running: Counter[str] = field(default_factory=Counter)
    done: list[Outcome] = field(default_factory=list)
    stats: Counter[str] = field(default_factory=Counter)
    named: deque[str] = field(default_factory=deque)  # to claim first, due or not (see notifications_send)

    def slow_hosts(self) -> set[str]:
        """Hosts with an answer outstanding for longer than ``slow_s``: their backlog makes no progress soon."""
        limit = time.monotonic() - self.slow_s
        return {job.host for job in self.running.values() if job.started < limit}

    def active(self) -> int:
        """Jobs that will keep the threads busy: running, and waiting for a host that answers."""
        slow = self.slow_hosts()
        return len(self.running) + sum(len(q) for host, q in self.waiting.items() if host not in slow)

    def pagerduty_in_flight(self) -> Counter[str]:
        jobs = [*self.running.values(), *(o.job for o in self.done if o.result and o.result.delivered)]
        return Counter(job.channel.id for job in jobs if job.channel.type == ChannelType.PAGERDUTY)

    def take(self, jobs: list[Job]) -> None:
        send, outcomes = jobs_screen(jobs, now=timezone.now(), pagerduty_in_flight=self.pagerduty_in_flight())
        self.done += outcomes
        for job in send:  # those waiting for a slow receiver are deferred before the next dispatch
            self.waiting.setdefault(job.host, deque()).append(job)

    def defer_behind_slow(self) -> None:
        """Kept claimed, the jobs waiting for a slow receiver beyond the next ``per_host`` would wait behind it (and
        hold their claims): they are deferred, for another run to take once its answers are due. Also those claimed
        before the receiver turned slow (a claim fills up to a batch)."""
        for host in self.slow_hosts():
            backlog = self.waiting.get(host)
            while backlog and len(backlog) > self.per_host:
                self.done.append(Outcome(backlog.pop(), defer_s=settings.NOTIFICATION_TIMEOUT_S))
                self.stats["deferred"] += 1

    def dispatch(self, pool: ThreadPoolExecutor, session: outbound.Session) -> None:
        # At most ``per_host`` sends per host: a receiver taking 10 s holds that many threads, not all of them.
        for host, backlog in self.waiting.items():
            while backlog and self.host_running[host] < self.per_host:
                job = backlog.popleft()
                job.started = time.monotonic()
                self.host_running[host] += 1
                self.running[pool.submit(_send, job, session)] = job

    def collect(self, timeout: float) -> None:
        finished, _ = wait(list(self.running), timeout=timeout, return_when=FIRST_COMPLETED)
        for future in finished:
            job = self.running.pop(future)
            self.host_running[job.host] -= 1
            self.done.append(Outcome(job, result=future.result()))

    def flush(self) -> None:
        outcomes, self.done = self.done, []
        stored = outcomes_store(outcomes)
        self.stats["flushes"] += 1
        self.stats["stored"] += len(stored)
        self.stats["lost_claims"] += len(outcomes) - len(stored)
        self.stats["delivered"] += sum(1 for o in outcomes if o.result is not None and o.result.delivered
                                       and o.job.notification.id in stored)

    def release_waiting(self) -> None:
        for backlog in self.waiting.values():
            self.done += [Outcome(job) for job in backlog]
            backlog.clear()

    def run(self, run_s: float) -> dict[str, int]:
        deadline = time.monotonic() + run_s
        claiming, last_flush, last_claim = True, time.monotonic(), 0.0
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="notify") as pool, \
                outbound.Session(per_host=self.per_host) as session:
            while True:
                open_ = time.monotonic() < deadline
                if not open_:
                    self.release_waiting()  # the run is over: what has not started goes back unsent
                elif (claiming or time.monotonic() - last_claim >= self.flush_s) and self.active() <= self.concurrency:
                    # Once the work at hand is down to the threads' worth, a claim fills it up to a batch: none idles
                    # between claims, and a claim (a transaction, the channels read and decrypted) is paid once per
                    # batch rather than once per thread's worth (a claim of 16 cost ~6 ms, a quarter of a run). While
                    # answers are outstanding (a slow receiver) new arrivals are looked for every ``flush_s``.
                    last_claim, limit = time.monotonic(), self.batch - self.active()
                    # Named ones once each (a retry of theirs falls due like any), then whatever is due.
                    named = [self.named.popleft() for _ in range(min(limit, len(self.named)))]
                    which = Q(pk__in=named) if named else Q(next_attempt_at__lte=timezone.now())
                    jobs = jobs_claim(which=which, limit=limit, now=timezone.now())
                    self.stats["claimed"] += len(jobs)
                    self.stats["claims"] += 1
                    claiming = bool(jobs or self.named)
                    self.take(jobs)
                self.defer_behind_slow()
                self.dispatch(pool, session)
                if not self.running and not any(self.waiting.values()):
                    if self.done:
                        self.flush()
                        claiming, last_flush = True, time.monotonic()  # retries may be due at once
                        continue
                    if claiming and open_:
                        continue
                    break
                if self.running:
                    # With nothing to store, wait a whole interval: a deadline already past would spin here (and
                    # take the interpreter from the sending threads) while a slow answer is outstanding.
                    due = last_flush + self.flush_s - time.monotonic() if self.done else self.flush_s
                    self.collect(max(0.0, min(self.flush_s, due)))
                if self.done and (len(self.done) >= self.batch or not self.running
                                  or time.monotonic() - last_flush >= self.flush_s):
                    self.flush()
                    claiming, last_flush = True, time.monotonic()
        return dict(self.stats)


def notifications_send(*, notification_ids: list[str] | None = None, run_s: float | None = None) -> dict[str, int]:
    """Sends ``notification_ids`` (just recorded: due whatever instant they were recorded for) and then the due
    notifications until none is left, or ``run_s`` is over: then it stops claiming, puts back what has not
    started and waits for the answers outstanding. Concurrent runs, in one process or many, take disjoint
    batches. Returns counts: claimed, stored, delivered, deferred, lost_claims."""
    sender = _Sender(concurrency=settings.NOTIFICATION_SEND_CONCURRENCY, per_host=settings.NOTIFICATION_SEND_PER_HOST,
                     batch=settings.NOTIFICATION_SEND_BATCH, flush_s=settings.NOTIFICATION_SEND_FLUSH_S,
                     slow_s=settings.NOTIFICATION_SEND_SLOW_S, named=deque(notification_ids or ()))
    return sender.run(settings.NOTIFICATION_SEND_RUN_S if run_s is None else run_s)
