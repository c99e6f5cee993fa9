from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        # imported here: registers the Celery tasks that billing enqueues by name (controlplane.queue); a web
        # process imports no tasks module otherwise, and a tasks module needs the app registry ready.
        from billing import tasks  # noqa: F401
