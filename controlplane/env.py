"""Reading settings from the environment (or from files named by ``NAME_FILE``), failing fast on values that must
be set."""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _environ(name: str) -> str | None:
    """``NAME`` from the environment or, when ``NAME_FILE`` is set instead, the content of that file: how
    Kubernetes and Docker hand a process a mounted Secret, so that a secret never has to sit in the
    environment (where ``/proc/<pid>/environ``, crash reports and child processes see it). One trailing newline
    is dropped (files written by ``echo`` or ``kubectl create secret --from-file`` end with one)."""
    value = os.environ.get(name)
    path = os.environ.get(f"{name}_FILE")
    if not path:
        return value
    if value is not None:
        raise ImproperlyConfigured(f"Set either {name} or {name}_FILE, not both.")
    try:
        content = Path(path).read_text()
    except OSError as exc:
        raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc.strerror}.") from exc
    return content[:-1] if content.endswith("\n") else content


def env_str(name: str, default: str | None = None, *, required: bool = False) -> str:
    value = _environ(name)
    if value is None or value == "":
        if required:
            raise ImproperlyConfigured(f"Environment variable {name} must be set.")
        if default is None:
            raise ImproperlyConfigured(f"Environment variable {name} has no default; set it.")
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = _environ(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"Environment variable {name}={raw!r} is not a boolean (use 1/0, true/false).")


def env_int(name: str, default: int) -> int:
    raw = _environ(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"Environment variable {name}={raw!r} is not an integer.") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    raw = _environ(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def installation_secret(path: Path) -> str:
    """A secret made once per installation and kept in ``path`` (mode 0600), so sessions and the data encrypted
    with keys derived from it survive restarts. Safe when several processes start at once: the file appears
    complete or not at all (written aside, then hard-linked into place), and the first writer wins."""
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
        try:
            os.link(candidate, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
    finally:
        candidate.unlink(missing_ok=True)
    return _read_secret(path)


def _read_secret(path: Path) -> str:
    value = path.read_text().strip()
    if len(value) < 32:
        raise ImproperlyConfigured(f"{path} holds no usable secret; delete it to have a new one made.")
    return value


def serves_only_loopback(host: str) -> bool:
    """Whether ``host`` (an address, ``[v6]`` or a name) can only be reached from this machine."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def loopback_standins(allowed_hosts: list[str]) -> bool:
    """``LOOPBACK_STANDINS``: the production profile on one machine against stand-ins on loopback (`make
    run-production`, the production-like tests): plain HTTP (no SSL redirect, no secure-only cookies, no HSTS, which
    would pin localhost to https in that browser for a year), receivers on loopback, the simulated clouds, brokers'
    APIs on loopback only, no VIES. Off by default; refused unless every allowed host is loopback, so an installation
    reachable from the network can never run with it."""
    on = env_bool("LOOPBACK_STANDINS", False)
    if on and not all(serves_only_loopback(host) for host in allowed_hosts):
        raise ImproperlyConfigured(f"LOOPBACK_STANDINS is on but ALLOWED_HOSTS={allowed_hosts} names a host that is "
                                   "not loopback: it is for a run on one machine only.")
    return on
