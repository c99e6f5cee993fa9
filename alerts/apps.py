from django.apps import AppConfig

from deployments import hooks as deployment_hooks
from projects import hooks as project_hooks


class AlertsConfig(AppConfig):
    name = "alerts"

    def ready(self) -> None:
        # imported here: the receivers use alerts' services and models, which load once the app registry is ready.
        from alerts import receivers

        project_hooks.project_created.register(receivers.project_default_rules_add)
        project_hooks.project_deleting.register(receivers.project_organization_rules_keep)
        deployment_hooks.planned_maintenance.register(receivers.planned_maintenance_notice)
