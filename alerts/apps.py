from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"

    def ready(self) -> None:
        # imported here: registers the Celery tasks that alerts enqueues by name (controlplane.queue); a web
        # process imports no tasks module otherwise, and a tasks module needs the app registry ready.
        from alerts import tasks  # noqa: F401
