from django.apps import AppConfig

from projects import hooks as project_hooks


class DeploymentsConfig(AppConfig):
    name = "deployments"

    def ready(self) -> None:
        # imported here: the receivers read deployments' models, which load once the app registry is ready.
        from deployments import receivers

        project_hooks.project_delete_blockers.register(receivers.project_deployments_block_delete)
