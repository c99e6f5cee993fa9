from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "projects"
    verbose_name = "Tenancy and access"

    def ready(self) -> None:
        # imported here: registers the OpenAPI auth extensions, once the app registry is ready.
        from projects.api import schema  # noqa: F401
