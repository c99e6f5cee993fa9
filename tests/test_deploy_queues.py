"""Every task goes to a declared queue (controlplane/queues.py), and beat in production holds RedBeat's Redis
lock, so a second beat replica schedules nothing while the first one lives (real Redis). A dead worker's task comes
back after the Redis transport's visibility timeout, which stays above every countdown we schedule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from types import SimpleNamespace

from celery import Celery
from django.conf import settings
from redbeat.schedulers import RedBeatScheduler, acquire_distributed_beat_lock, get_redis

from controlplane.celery import app as celery_app
from controlplane.queues import LONGEST_COUNTDOWN_S, QUEUES, beat_lock_settings
from tests.deploy_support import ROOT


def test_every_registered_task_routes_to_a_declared_queue():
    celery_app.loader.import_default_modules()  # every app's tasks, as a worker imports them
    # Tasks that test modules register for themselves (controlplane.tests.*, tests.*) are not the product's.
    names = [name for name in celery_app.tasks
             if not name.startswith(("celery.", "tests.")) and ".tests." not in name]
    assert len(names) > 20
    unrouted = []
    for name in names:
        # Routed by a rule, not by falling through to the default queue.
        route = celery_app.amqp.router.route({}, name)
        explicit = any(router(name) for router in celery_app.amqp.router.routes)
        if route["queue"].name not in QUEUES or not explicit:
            unrouted.append(name)
    assert unrouted == []
    assert set(celery_app.amqp.queues) == set(QUEUES)


def test_beat_schedules_every_periodic_task_to_a_declared_queue():
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert celery_app.amqp.router.route({}, entry["task"])["queue"].name in QUEUES, entry["task"]


def test_the_production_profile_runs_beat_with_the_redis_lock():
    env = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "controlplane.settings"}
    for line in (ROOT / "deploy" / "build.env").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    code = ("import django, json; django.setup(); from django.conf import settings as s; "
            "print(json.dumps([s.CELERY_BEAT_SCHEDULER, s.CELERY_REDBEAT_REDIS_URL, s.CELERY_REDBEAT_LOCK_TIMEOUT]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert json.loads(out) == ["controlplane.beat.LockWaitingRedBeatScheduler", env["REDIS_URL"], 30]


def test_a_second_beat_waits_for_the_lock_and_schedules_nothing_meanwhile():
    conf = beat_lock_settings(settings.REDIS_URL)
    # Our own key prefix (nothing shared with another run) and a short poll so the hand-over is quick to see.
    conf.update(redbeat_key_prefix=f"test-redbeat-{uuid.uuid4().hex}", beat_max_loop_interval=0.2,
                broker_url=settings.REDIS_URL, beat_schedule={})
    beats = []
    for _ in range(2):
        app = Celery("beat-lock-test", set_as_current=False)
        app.conf.update(conf)
        beats.append(RedBeatScheduler(app=app, lazy=True))
    first, second = beats
    acquire_distributed_beat_lock(sender=SimpleNamespace(scheduler=first))
    assert first.lock is not None and first.lock.owned()

    waiting = threading.Thread(target=acquire_distributed_beat_lock,
                               kwargs={"sender": SimpleNamespace(scheduler=second)}, daemon=True)
    waiting.start()
    waiting.join(timeout=1.0)
    assert waiting.is_alive() and second.lock is None  # blocked: its scheduling loop has not started

    first.close()  # the holder stops (a rollout, a drained node): the standby takes over
    waiting.join(timeout=5)
    assert not waiting.is_alive() and second.lock is not None and second.lock.locked()
    # The lock's token is thread-local to the thread that took it: release by key.
    get_redis(second.app).delete(second.lock_key)


def test_the_visibility_timeout_exceeds_every_countdown_we_schedule():
    """An ETA task waits unacknowledged in a worker until due; out longer than the visibility timeout, Redis would
    hand it to a second worker. The delays settings and task options name stay within LONGEST_COUNTDOWN_S
    (alerts.tasks.notice_email_send caps its own backoff at 3600 in code), and the timeout is above it."""
    celery_app.loader.import_default_modules()
    # Celery's autoretry caps a backoff at 600 s where the task names no cap.
    backoff_caps = {name: getattr(task, "retry_backoff_max", 600) for name, task in celery_app.tasks.items()
                    if getattr(task, "retry_backoff", False) and not name.startswith("celery.")}
    assert backoff_caps and max(backoff_caps.values()) <= LONGEST_COUNTDOWN_S, backoff_caps
    assert max(settings.VIES_RETRY_SCHEDULE_S) <= LONGEST_COUNTDOWN_S
    assert settings.PEERING_SLOW_POLL_SECONDS <= LONGEST_COUNTDOWN_S
    options = celery_app.conf.broker_transport_options
    assert options["visibility_timeout"] > LONGEST_COUNTDOWN_S and options["unacked_restore_interval"] > 0


def test_a_standby_left_without_the_lock_by_a_redis_outage_waits_for_it_instead_of_crashing():
    """celery-redbeat swallows a failed lock acquisition at start (Redis away while the standby waited) and then
    crashes on the first tick; ours takes the lock on that tick."""
    from controlplane.beat import LockWaitingRedBeatScheduler

    conf = beat_lock_settings(settings.REDIS_URL)
    conf.update(redbeat_key_prefix=f"test-redbeat-{uuid.uuid4().hex}", beat_max_loop_interval=0.2,
                broker_url=settings.REDIS_URL, beat_schedule={})
    app = Celery("beat-outage-test", set_as_current=False)
    app.conf.update(conf)
    standby = LockWaitingRedBeatScheduler(app=app, lazy=True)
    assert standby.lock_key and standby.lock is None  # as the swallowed ConnectionError leaves it
    try:
        assert standby.tick() >= 0
        assert standby.lock is not None and standby.lock.owned()
    finally:
        get_redis(app).delete(standby.lock_key)
