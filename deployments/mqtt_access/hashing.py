"""Password hashes for a deployment's built-in authentication database, in the scheme EMQX 5 verifies itself.

The control plane never keeps a device password: it stores a salted hash and pushes the hash and salt to the
broker's built-in database (EMQX 5 ``password_based``/``built_in_database`` authenticators), which hashes
the CONNECT password the same way and compares.

``pbkdf2_sha256``: PBKDF2-HMAC-SHA256, ``PBKDF2_ITERATIONS`` rounds,
a 32-byte key, written as lower-case hex; the salt is the ASCII text the broker is given, used as bytes.
The broker is configured with the same ``mac_fun``/``iterations``/``dk_length``.

One scheme only: EMQX 5 has one built-in database authenticator per chain (its id is the mechanism and the
backend), and that authenticator has one hash algorithm, so every user of a deployment shares it. Users
imported from another system must come with hashes in this scheme (or as plain passwords, hashed here).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PBKDF2 = "pbkdf2_sha256"
ALGORITHMS = (PBKDF2,)
#: EMQX's default for pbkdf2; every connect pays it once, so it is a trade-off with connect latency.
PBKDF2_ITERATIONS = 4096
PBKDF2_KEY_BYTES = 32
SALT_BYTES = 16
GENERATED_PASSWORD_BYTES = 18  # 24 URL-safe characters, ~144 bits

_HEX_KEY = re.compile(rf"^[0-9a-f]{{{PBKDF2_KEY_BYTES * 2}}}$")
_PBKDF2_SALT = re.compile(r"^[0-9A-Za-z._-]{8,64}$")


@dataclass(frozen=True)
class PasswordHash:
    algorithm: str
    password_hash: str
    salt: str


def generate_password() -> str:
    """A password for a device, shown once."""
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)


def pbkdf2_hex(password: str, salt: str) -> str:
    key = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), PBKDF2_ITERATIONS, PBKDF2_KEY_BYTES)
    return key.hex()


def hash_password(password: str) -> PasswordHash:
    """A new salt and the PBKDF2 hash of ``password`` with it."""
    salt = secrets.token_hex(SALT_BYTES)
    return PasswordHash(PBKDF2, pbkdf2_hex(password, salt), salt)


def verify_password(stored: PasswordHash, password: str) -> bool:
    """What the broker decides for a CONNECT with ``password`` (constant-time comparison)."""
    if stored.algorithm == PBKDF2:
        return hmac.compare_digest(pbkdf2_hex(password, stored.salt), stored.password_hash.lower())
    return False


def imported_hash_problem(algorithm: str, password_hash: str, salt: str) -> str | None:
    """Why a pre-hashed import row cannot be used, or ``None``."""
    if algorithm not in ALGORITHMS:
        return f"algorithm must be one of {', '.join(ALGORITHMS)}."
    if not _HEX_KEY.match(password_hash.lower()):
        return (f"password_hash must be the {PBKDF2_KEY_BYTES}-byte PBKDF2-HMAC-SHA256 key "
                f"({PBKDF2_ITERATIONS} iterations) in hex.")
    if not _PBKDF2_SALT.match(salt):
        return "salt must be 8 to 64 characters of letters, digits, '.', '_' or '-'."
    return None


def imported_hash(algorithm: str, password_hash: str, salt: str) -> PasswordHash:
    """The stored form of a valid pre-hashed import row (see ``imported_hash_problem``)."""
    return PasswordHash(algorithm, password_hash.lower(), salt)
