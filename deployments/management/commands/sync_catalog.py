from django.core.management.base import BaseCommand

from deployments.services import catalog_sync


class Command(BaseCommand):
    help = "Load regions, specs and prices from deployments/data/catalog.json (idempotent)."

    def handle(self, *args, **options) -> None:
        counts = catalog_sync()
        self.stdout.write(f"catalog: {counts['regions']} regions, {counts['specs']} specs")
