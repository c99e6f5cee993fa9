from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "projects"
    verbose_name = "Tenancy and access"

    def ready(self) -> None:
        # imported here: connects the signals that retire cached API keys (in every process that writes), once
        # the models are loaded.
        from projects import key_cache

        # imported here: registers the OpenAPI auth extensions, once the app registry is ready.
        from projects.api import schema  # noqa: F401

        key_cache.connect()
