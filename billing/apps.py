from django.apps import AppConfig

from alerts import hooks as alert_hooks
from deployments import hooks as deployment_hooks


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        # imported here: the receivers read billing's models, which load once the app registry is ready.
        from billing import receivers

        deployment_hooks.start_blockers.register(receivers.organization_suspended_blocks_start)
        deployment_hooks.change_quote.register(receivers.change_quote)
        alert_hooks.organization_payment_failures.register(receivers.organization_payment_failures)
