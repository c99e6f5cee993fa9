from celery import shared_task

from controlplane.api.idempotency import idempotency_records_purge as purge


@shared_task(name="controlplane.tasks.idempotency_records_purge")
def idempotency_records_purge() -> int:
    return purge()
