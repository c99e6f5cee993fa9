"""Thin, idempotent jobs of the alerts app: take ids, load, return early when there is nothing to do."""

from __future__ import annotations

from smtplib import SMTPException

from celery import shared_task

from alerts import delivery, evaluator, metrics
from alerts.services import failing_channels, notifications, retention, sending


@shared_task(name="alerts.tasks.metrics_collect", ignore_result=True)
def metrics_collect() -> int:
    return metrics.metrics_collect()


@shared_task(name="alerts.tasks.metric_samples_purge", ignore_result=True)
def metric_samples_purge() -> int:
    return retention.metric_samples_purge()


@shared_task(name="alerts.tasks.alerts_evaluate", ignore_result=True)
def alerts_evaluate() -> dict[str, int]:
    return evaluator.alerts_evaluate()


@shared_task(name="alerts.tasks.notifications_send", acks_late=True, ignore_result=True)
def notifications_send(notification_ids: list[str] | None = None) -> dict[str, int]:
    # Started on commit of new notifications (with their ids) and by the beat (retries fall due there); concurrent
    # runs take disjoint batches, so a duplicate is cheap.
    return sending.notifications_send(notification_ids=notification_ids)


@shared_task(name="alerts.tasks.notification_deliver", acks_late=True, ignore_result=True)
def notification_deliver(notification_id: str) -> str:
    # Tasks queued before the batch sender: one attempt; a retry falls due for the sender (next_attempt_at).
    delay = sending.notification_attempt(notification_id=notification_id)
    return "done" if delay is None else f"retry in {delay:g}s"


@shared_task(name="alerts.tasks.notifications_redrive", ignore_result=True)
def notifications_redrive() -> int:
    return notifications.notifications_redrive()


@shared_task(name="alerts.tasks.notice_email_send", bind=True, acks_late=True, ignore_result=True, max_retries=6)
def notice_email_send(self, subject: str, text: str, html: str, recipients: list[str]) -> str:
    # A notice emailed straight to people (no channel to log it in): SMTP trouble is retried with backoff.
    result = delivery.send_mail(subject, text, html, recipients)
    if not result.delivered and result.transient:
        raise self.retry(countdown=min(60 * 2 ** self.request.retries, 3600))
    return "delivered" if result.delivered else result.error


@shared_task(name="alerts.tasks.failing_channels_disable", ignore_result=True)
def failing_channels_disable() -> int:
    return len(failing_channels.failing_channels_disable())


@shared_task(name="alerts.tasks.channel_disabled_notify", bind=True, acks_late=True, ignore_result=True,
             autoretry_for=(OSError, SMTPException), retry_backoff=60, max_retries=5)
def channel_disabled_notify(self, channel_id: str) -> int:
    # Sent once per disabling (the service only enqueues it on the transition); SMTP hiccups are retried.
    return failing_channels.channel_disabled_notify(channel_id=channel_id)
