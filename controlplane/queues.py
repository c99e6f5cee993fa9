"""Celery queues and where each task goes; Django-free, so settings and deployment checks can read it.

Work is split by what it may not delay: a month's invoicing run or a storm of alert deliveries must never
sit in front of a deployment's converge step, and a slow SMTP server must never hold either. Production
runs one worker Deployment per queue (deploy/k8s/base/workers.yaml); `make run` runs one worker that
consumes them all (a worker without -Q consumes every queue in CELERY_TASK_QUEUES).
"""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

PROVISIONING = "provisioning"
BILLING = "billing"
ALERTS = "alerts"
MAIL = "mail"
# Purges and expiries: cheap, periodic, and nobody waits for them.
HOUSEKEEPING = "housekeeping"

QUEUES: tuple[str, ...] = (PROVISIONING, BILLING, ALERTS, MAIL, HOUSEKEEPING)

# Exact names win over patterns (Celery's MapRoute checks the names first), so the mail tasks of the
# projects and alerts apps leave their app's queue. A new task in one of these modules is routed by its
# pattern the day it is added; tests/test_deploy_queues.py fails on a task no route names.
TASK_ROUTES: dict[str, dict[str, str]] = {
    "projects.tasks.invitation_send_email": {"queue": MAIL},
    "projects.tasks.password_reset_send_email": {"queue": MAIL},
    "alerts.tasks.notice_email_send": {"queue": MAIL},
    "alerts.tasks.channel_disabled_notify": {"queue": MAIL},
    "deployments.tasks.*": {"queue": PROVISIONING},
    "billing.tasks.*": {"queue": BILLING},
    "alerts.tasks.*": {"queue": ALERTS},
    "projects.tasks.*": {"queue": HOUSEKEEPING},
    "controlplane.tasks.*": {"queue": HOUSEKEEPING},
}

# The longest delay any task is sent with (a countdown, a retry's backoff cap, a scheduled re-check): an hour, e.g.
# alerts.tasks.notice_email_send's and billing.tasks.invoice_collect's backoff caps and the last VIES retry.
# The Redis transport's visibility timeout is set above it (settings); tests/test_deploy_queues.py checks the
# tasks' backoff caps and the retry schedules in settings against it.
LONGEST_COUNTDOWN_S = 3600


def beat_lock_settings(redis_url: str) -> dict[str, object]:
    """Celery settings (lower-case names) that make beat hold a Redis lock while it schedules (RedBeat).

    A second beat replica (a rollout's surge pod, a stuck node's pod that came back) blocks on the lock
    instead of sending every periodic task twice. The lock is renewed on every tick, at most every
    `beat_max_loop_interval` seconds, and lapses `redbeat_lock_timeout` seconds after its holder died, so a
    killed beat is replaced within half a minute instead of RedBeat's default 25.
    """
    return {
        "beat_scheduler": "controlplane.beat.LockWaitingRedBeatScheduler",
        "redbeat_redis_url": redis_url,
        "redbeat_key_prefix": "mqcloud:redbeat",
        "redbeat_lock_timeout": 30,
        "beat_max_loop_interval": 5,
    }


def redis_transport_options(visibility_timeout_s: int, sweep_s: int) -> dict[str, object]:
    """The Redis transport's redelivery. A message a worker took and never acknowledged (acks late: it died
    mid-task) goes back to its queue once it has been out ``visibility_timeout_s`` (0: the default, a quarter of an
    hour beyond LONGEST_COUNTDOWN_S). An ETA task (a countdown, a retry's backoff) waits unacknowledged inside a
    worker until it is due, so the timeout must exceed the longest countdown, or such a task would be delivered
    twice; any margin beyond that only delays the return of a dead worker's task. Every worker looks for such
    messages every ``sweep_s`` (kombu's default is 10 s x 10, given here as one number)."""
    return {
        # A stalled Redis fails a send within seconds (the task is then kept: controlplane.queue) instead of holding
        # the request; above the 1 s a worker's BRPOP waits between polls.
        "socket_connect_timeout": 3,
        "socket_timeout": 10,
        "visibility_timeout": visibility_timeout_s or LONGEST_COUNTDOWN_S + 900,
        "unacked_restore_interval": sweep_s,
        "unacked_restore_throttle": 1,
    }


# What beat sends and when; each task goes to its queue by TASK_ROUTES like any other send.
BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "idempotency-records-purge": {"task": "controlplane.tasks.idempotency_records_purge", "schedule": 3600.0},
    "rate-counters-purge": {"task": "controlplane.tasks.rate_counters_purge", "schedule": 3600.0},
    # Tasks a request committed while the broker was unreachable (controlplane.queue), sent once it is back.
    "pending-tasks-send": {"task": "controlplane.tasks.pending_tasks_send", "schedule": 10.0},
    "invitations-expire": {"task": "projects.tasks.invitations_expire", "schedule": 900.0},
    "console-sessions-purge": {"task": "projects.tasks.console_sessions_purge", "schedule": 3600.0},
    "deployments-reconcile": {"task": "deployments.tasks.deployments_reconcile", "schedule": 60.0},
    "peerings-reconcile": {"task": "deployments.tasks.peerings_reconcile", "schedule": 120.0},
    "mqtt-access-reconcile": {"task": "deployments.tasks.mqtt_access_reconcile", "schedule": 60.0},
    "tls-certificates-renew": {"task": "deployments.tasks.tls_certificates_renew", "schedule": crontab(minute=40)},
    # Platform maintenance: announced a week ahead, started inside the deployment's window.
    "planned-maintenance-pass": {"task": "deployments.tasks.planned_maintenance_pass", "schedule": 300.0},
    # Billing: meter the last closed hours (re-metering catches late events); invoice on the 1st.
    "billing-usage-meter": {"task": "billing.tasks.usage_meter_recent", "schedule": crontab(minute=5)},
    "billing-invoices-generate": {"task": "billing.tasks.invoices_generate_previous_month",
                                  "schedule": crontab(minute=30, hour=0, day_of_month=1)},
    # Stripe: charge open invoices, retry failed ones on the dunning schedule, suspend after the grace period.
    "billing-invoices-collect": {"task": "billing.tasks.invoices_collect_due", "schedule": 900.0},
    "billing-dunning-run": {"task": "billing.tasks.dunning_run", "schedule": crontab(minute=20)},
    # VAT numbers VIES could not answer for (down, busy, timeout) are checked again; rate-limited per account.
    "billing-vat-numbers-recheck": {"task": "billing.tasks.vat_numbers_recheck", "schedule": crontab(minute=20)},
    "alerts-metrics-collect": {"task": "alerts.tasks.metrics_collect", "schedule": 30.0},
    "alerts-metric-samples-purge": {"task": "alerts.tasks.metric_samples_purge", "schedule": 3600.0},
    "alerts-evaluate": {"task": "alerts.tasks.alerts_evaluate", "schedule": 30.0},
    "alerts-notifications-send": {"task": "alerts.tasks.notifications_send", "schedule": 5.0},
    "alerts-notifications-redrive": {"task": "alerts.tasks.notifications_redrive", "schedule": 300.0},
    "alerts-failing-channels-disable": {"task": "alerts.tasks.failing_channels_disable", "schedule": 3600.0},
}
