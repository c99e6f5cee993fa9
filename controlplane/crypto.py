"""Encryption at rest for secrets kept in the database (API-key-free: those are hashed instead)."""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.signals import setting_changed
from django.db import models


def _configured_keys() -> list[Fernet]:
    keys = list(settings.FIELD_ENCRYPTION_KEYS)
    if not keys:
        # Outside production a key is derived from SECRET_KEY so the embedded default needs no setup.
        derived = base64.urlsafe_b64encode(hashlib.sha256(("fernet:" + settings.SECRET_KEY).encode()).digest())
        keys = [derived.decode()]
    return [Fernet(key) for key in keys]


@lru_cache(maxsize=1)
def _fernet() -> MultiFernet:
    return MultiFernet(_configured_keys())


def all_keys() -> MultiFernet:
    """Every configured key: the primary encrypts, any of them decrypts."""
    return _fernet()


@lru_cache(maxsize=1)
def primary_key() -> Fernet:
    """The key new secrets are encrypted with: the first of ``FIELD_ENCRYPTION_KEYS``."""
    return _configured_keys()[0]


def _forget_keys(*, setting: str, **kwargs: object) -> None:
    if setting in {"FIELD_ENCRYPTION_KEYS", "SECRET_KEY"}:
        _fernet.cache_clear()
        primary_key.cache_clear()


setting_changed.connect(_forget_keys)


def encrypt_text(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt_text(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("stored secret cannot be decrypted with the configured keys") from exc


class EncryptedTextField(models.TextField):
    """A text column stored as a Fernet token; Python code only ever sees the plaintext."""

    def from_db_value(self, value: str | None, expression: object, connection: object) -> str | None:
        if value is None or value == "":
            return value
        return decrypt_text(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt_text(value)
