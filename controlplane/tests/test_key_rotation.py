"""Fernet key rotation: a new key first, ``encryption_keys_rotate`` re-encrypts every stored secret under it, then
the old key can go; ``--check`` says when."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from controlplane.key_rotation import encrypted_columns
from controlplane.models import IdempotencyRecord

pytestmark = pytest.mark.django_db

OLD, NEW, LOST = (Fernet.generate_key().decode() for _ in range(3))


def record(n: int, body: str) -> IdempotencyRecord:
    return IdempotencyRecord.objects.create(
        scope="org_1", key=f"k{n}", method="POST", path="/api/v1/api-keys", request_fingerprint="f", response_body=body
    )


def stored_tokens() -> dict[int, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, response_body FROM controlplane_idempotencyrecord ORDER BY id")
        return dict(cursor.fetchall())


def test_every_encrypted_column_of_every_app_is_found():
    found = {(model._meta.label, field.name) for model, field in encrypted_columns()}
    assert {
        ("controlplane.IdempotencyRecord", "response_body"),
        ("deployments.Deployment", "dashboard_password"),
        ("alerts.AlertChannel", "secret"),
        ("projects.Invitation", "token_encrypted"),
    } <= found


def test_rotation_moves_every_secret_to_the_new_key_in_batches_and_then_the_old_key_can_go(capsys):
    with override_settings(FIELD_ENCRYPTION_KEYS=[OLD]):
        records = [record(n, f'{{"key": "secret-{n}"}}') for n in range(5)]
        record(99, "")
    before = stored_tokens()

    with override_settings(FIELD_ENCRYPTION_KEYS=[NEW, OLD]):
        with pytest.raises(CommandError, match="5 secret"):
            call_command("encryption_keys_rotate", "--check")
        assert stored_tokens() == before, "--check writes nothing"

        call_command("encryption_keys_rotate", "--batch-size", "2")
        assert "5 secret(s) rotated" in capsys.readouterr().out
        after = stored_tokens()
        call_command("encryption_keys_rotate", "--check")
        call_command("encryption_keys_rotate")
        assert stored_tokens() == after, "a second run touches nothing"
        assert "0 secret(s) rotated" in capsys.readouterr().out

    for row_id, token in after.items():
        if token:
            Fernet(NEW.encode()).decrypt(token.encode())
        else:
            assert before[row_id] == ""
    with override_settings(FIELD_ENCRYPTION_KEYS=[NEW]):
        assert [IdempotencyRecord.objects.get(pk=r.pk).response_body for r in records] == [
            f'{{"key": "secret-{n}"}}' for n in range(5)
        ]


def test_a_secret_no_configured_key_can_read_is_reported_and_left_as_it_is(capsys):
    with override_settings(FIELD_ENCRYPTION_KEYS=[LOST]):
        lost = record(1, "written with a key that is gone")
    with override_settings(FIELD_ENCRYPTION_KEYS=[OLD]):
        record(2, "readable")
    before = stored_tokens()

    with override_settings(FIELD_ENCRYPTION_KEYS=[NEW, OLD]):
        with pytest.raises(CommandError, match="1 stored secret"):
            call_command("encryption_keys_rotate")
    after = stored_tokens()
    assert after[lost.pk] == before[lost.pk]
    assert "UNREADABLE" in capsys.readouterr().out
    Fernet(NEW.encode()).decrypt(after[lost.pk + 1].encode())
