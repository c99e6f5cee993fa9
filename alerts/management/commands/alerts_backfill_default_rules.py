"""Gives projects created before default alert rules existed their defaults (and organizations their
"Owners (email)" channel). Idempotent: projects that already have a default rule are skipped."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from alerts.services.defaults import default_rules_backfill


class Command(BaseCommand):
    help = "Create the default alert rules for projects that have none (safe to rerun)."

    def handle(self, *args, **options) -> None:
        count = default_rules_backfill()
        self.stdout.write(f"Default alert rules created for {count} project(s).")
