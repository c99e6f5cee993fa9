from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "projects"
    verbose_name = "Tenancy and access"

    def ready(self) -> None:
        from projects.api import schema  # noqa: F401  (registers the OpenAPI auth extensions)
