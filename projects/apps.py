from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "projects"
    verbose_name = "Tenancy and access"

    def ready(self) -> None:
        # imported here: registers the Celery tasks that the services enqueue by name (controlplane.queue); a
        # web process imports no tasks module otherwise, and a tasks module needs the app registry ready.
        from projects import tasks  # noqa: F401

        # imported here: registers the OpenAPI auth extensions, once the app registry is ready.
        from projects.api import schema  # noqa: F401
