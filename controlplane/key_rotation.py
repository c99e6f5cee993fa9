"""Re-encrypting every stored secret under the primary Fernet key, so an old key can be retired.

Rotation, as the operations guide tells it: put the new key first in ``FIELD_ENCRYPTION_KEYS`` (the old ones
stay after it, still able to decrypt), roll it out, run ``manage.py encryption_keys_rotate``, then drop the old
key once ``manage.py encryption_keys_rotate --check`` reports nothing left under it.

The columns are found by their field class (every ``EncryptedTextField`` of every installed model), so a new
secret column is covered without being listed here. Tokens are read and written as stored (cast to plain text,
never through the field, which would hand back plaintext), in primary-key order and in batches of one transaction
each, and a row is only written back if it still holds the token that was read: a secret changed by a request
in the meantime is already under the primary key and is left as it is. A run is idempotent: tokens already
under the primary key are not touched. A token no configured key can decrypt is counted, never overwritten.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from cryptography.fernet import InvalidToken
from django.apps import apps
from django.db import models, transaction
from django.db.models import Value
from django.db.models.functions import Cast

from controlplane.crypto import EncryptedTextField, all_keys, primary_key


@dataclass
class ColumnReport:
    table: str
    column: str
    current: int = 0
    rotated: int = 0
    unreadable: int = 0


@dataclass
class RotationReport:
    columns: list[ColumnReport] = field(default_factory=list)

    @property
    def rotated(self) -> int:
        return sum(column.rotated for column in self.columns)

    @property
    def unreadable(self) -> int:
        return sum(column.unreadable for column in self.columns)


def encrypted_columns() -> Iterator[tuple[type[models.Model], EncryptedTextField]]:
    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        for model_field in model._meta.concrete_fields:
            if isinstance(model_field, EncryptedTextField):
                yield model, model_field


def reencrypt_secrets(*, batch_size: int = 500, dry_run: bool = False) -> RotationReport:
    """Re-encrypt every stored secret not yet under the primary key. With ``dry_run`` nothing is written and
    ``rotated`` counts what would be."""
    report = RotationReport()
    for model, secret_field in encrypted_columns():
        report.columns.append(_reencrypt_column(model, secret_field, batch_size=batch_size, dry_run=dry_run))
    return report


def _reencrypt_column(
    model: type[models.Model], secret_field: EncryptedTextField, *, batch_size: int, dry_run: bool
) -> ColumnReport:
    report = ColumnReport(table=model._meta.db_table, column=secret_field.column or secret_field.name)
    # Cast to a plain text column: the stored token as it is, without the field decrypting it on the way out, and
    # a Value written back as it is, without the field encrypting it again.
    stored = Cast(secret_field.name, models.TextField())
    rows_with_secret = model._base_manager.alias(token=stored).exclude(token="").exclude(token__isnull=True)
    primary, every_key = primary_key(), all_keys()
    last_pk: object = None
    while True:
        with transaction.atomic():
            batch = rows_with_secret if last_pk is None else rows_with_secret.filter(pk__gt=last_pk)
            rows = list(batch.annotate(stored_token=stored).order_by("pk").values_list("pk", "stored_token")[
                :batch_size
            ])
            for row_pk, token in rows:
                try:
                    primary.decrypt(token.encode())
                    report.current += 1
                    continue
                except InvalidToken:
                    pass
                try:
                    rotated = every_key.rotate(token.encode()).decode()
                except InvalidToken:
                    report.unreadable += 1
                    continue
                if not dry_run:
                    model._base_manager.alias(token=stored).filter(pk=row_pk, token=token).update(
                        **{secret_field.name: Value(rotated, output_field=models.TextField())}
                    )
                report.rotated += 1
        if len(rows) < batch_size:
            return report
        last_pk = rows[-1][0]
