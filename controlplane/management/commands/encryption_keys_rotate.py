"""``manage.py encryption_keys_rotate``: re-encrypt every stored secret under the first of FIELD_ENCRYPTION_KEYS.

``--check`` writes nothing and exits 1 while any secret is still under another key (so the old key may not be
dropped yet) or cannot be decrypted at all.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.key_rotation import reencrypt_secrets


class Command(BaseCommand):
    help = "Re-encrypt every stored secret under the primary key (the first of FIELD_ENCRYPTION_KEYS)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if any secret needs rotating")
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args: Any, check: bool, batch_size: int, **options: Any) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        report = reencrypt_secrets(batch_size=batch_size, dry_run=check)
        verb = "to rotate" if check else "rotated"
        for column in report.columns:
            if column.rotated or column.unreadable:
                self.stdout.write(
                    f"{column.table}.{column.column}: {column.rotated} {verb}, {column.current} already current"
                    + (f", {column.unreadable} UNREADABLE with every configured key" if column.unreadable else "")
                )
        self.stdout.write(f"{report.rotated} secret(s) {verb}; {report.unreadable} unreadable.")
        if report.unreadable:
            raise CommandError(
                f"{report.unreadable} stored secret(s) cannot be decrypted with any configured key: "
                "put the key they were written with back in FIELD_ENCRYPTION_KEYS (after the primary one)."
            )
        if check and report.rotated:
            raise CommandError(f"{report.rotated} secret(s) are not under the primary key yet: run without --check.")
