from django.apps import AppConfig

from alerts import hooks as alert_hooks


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        # imported here: registers the Celery tasks that billing enqueues by name (controlplane.queue), and the
        # hook receivers; a web process imports no tasks module otherwise, and both need the app registry ready.
        from billing import receivers, tasks  # noqa: F401

        alert_hooks.organization_payment_failures.register(receivers.organization_payment_failures)
