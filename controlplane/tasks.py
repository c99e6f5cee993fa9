from celery import shared_task

from controlplane import ratelimit
from controlplane.api.idempotency import idempotency_records_purge as purge


@shared_task(name="controlplane.tasks.idempotency_records_purge")
def idempotency_records_purge() -> int:
    return purge()


@shared_task(name="controlplane.tasks.rate_counters_purge")
def rate_counters_purge() -> int:
    return ratelimit.counters_purge()
