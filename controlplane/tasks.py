from celery import shared_task

from controlplane import queue, ratelimit
from controlplane.api.idempotency import idempotency_records_purge as purge


@shared_task(name="controlplane.tasks.idempotency_records_purge")
def idempotency_records_purge() -> int:
    return purge()


@shared_task(name="controlplane.tasks.rate_counters_purge")
def rate_counters_purge() -> int:
    return ratelimit.counters_purge()


@shared_task(name="controlplane.tasks.pending_tasks_send")
def pending_tasks_send() -> int:
    return queue.pending_tasks_send()
