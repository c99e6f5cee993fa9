"""What one simulated EMQX node knows: built-in database users, the file authorization source and its settings,
and the counters `/metrics` reports. In memory; with a state directory also kept in JSON files there, so a
restarted process keeps what the control plane pushed.

Only this process's event loop mutates it (the management API hands its calls to the loop).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import acl

log = logging.getLogger(__name__)

# EMQX: password_hash_algorithm {name = pbkdf2, mac_fun = sha256, iterations = 4096, dk_length = 32}
ITERATIONS = 4096
DK_LENGTH = 32

# CONNACK return codes (MQTT 3.1.1) EMQX answers for its authentication results.
CONNACK_ACCEPTED = 0
CONNACK_BAD_USERNAME_OR_PASSWORD = 4
CONNACK_NOT_AUTHORIZED = 5

METRIC_NAMES = (
    "messages.received",
    "messages.sent",
    "messages.dropped",
    "messages.dropped.no_subscribers",
    "client.connected",
    "client.disconnected",
    "client.authenticate",
    "client.auth.failure",
    "authorization.allow",
    "authorization.deny",
    "authorization.nomatch",
    "authorization.superuser",
)


def hash_password(password: str, salt: str) -> str:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), ITERATIONS, DK_LENGTH).hex()


class BadRequest(ValueError):
    """A request the management API answers with 400 BAD_REQUEST."""


@dataclass
class User:
    user_id: str
    password_hash: str  # lower-case hex
    salt: str
    is_superuser: bool = False


def _user_from(entry: Any, hashed: bool) -> User:
    if not isinstance(entry, dict):
        raise BadRequest("an entry is not an object")
    user_id = entry.get("user_id")
    if not isinstance(user_id, str) or not user_id or "\x00" in user_id:
        raise BadRequest("user_id must be a non-empty string")
    is_superuser = entry.get("is_superuser", False)
    if isinstance(is_superuser, str) and is_superuser.lower() in ("true", "false"):
        is_superuser = is_superuser.lower() == "true"
    if not isinstance(is_superuser, bool):
        raise BadRequest("is_superuser must be a boolean")
    if hashed:
        password_hash, salt = entry.get("password_hash"), entry.get("salt", "")
        if not isinstance(password_hash, str) or not isinstance(salt, str):
            raise BadRequest("password_hash and salt must be strings")
        try:
            bytes.fromhex(password_hash)
        except ValueError:
            raise BadRequest("password_hash must be hex") from None
        return User(user_id, password_hash.lower(), salt, is_superuser)
    password = entry.get("password")
    if not isinstance(password, str) or not password:
        raise BadRequest("password must be a non-empty string")
    salt = secrets.token_hex(16)
    return User(user_id, hash_password(password, salt), salt, is_superuser)


class BrokerState:
    def __init__(self, state_dir: str | os.PathLike[str] | None = None, *, allow_anonymous: bool = False) -> None:
        #: Accept a CONNECT without a username before any authenticator runs (mosquitto's ``allow_anonymous``;
        #: EMQX with no authenticator). The benchmarks' baseline; never set by the simulated cluster.
        self.allow_anonymous = allow_anonymous
        self.users: dict[str, User] = {}
        self.rules_text = ""
        self.rules: list[acl.Rule] = []
        self.source_enabled = True
        self.settings: dict[str, Any] = {"no_match": "deny", "deny_action": "ignore", "cache": {"enable": False}}
        self.metrics: Counter[str] = Counter({name: 0 for name in METRIC_NAMES})
        self.state_dir = Path(state_dir) if state_dir else None
        if self.state_dir:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self._load()

    # --- authentication ---------------------------------------------------------------------------------------

    def authenticate(self, username: str | None, password: str | bytes | None) -> tuple[int, bool]:
        """(CONNACK return code, is_superuser) of a chain of the built-in database alone (see ``builtin``)."""
        if self.anonymous(username):
            return self.conclude("allow", False, denied_code=CONNACK_BAD_USERNAME_OR_PASSWORD)
        decision, superuser = self.builtin(username, password)
        return self.conclude(decision, superuser, denied_code=CONNACK_BAD_USERNAME_OR_PASSWORD)

    def anonymous(self, username: str | None) -> bool:
        """Whether a client with this username skips the chain: none given, and anonymous access allowed."""
        return self.allow_anonymous and not username

    def builtin(self, username: str | None, password: str | bytes | None) -> tuple[str, bool]:
        """The built-in database authenticator's answer, as EMQX's: an unknown or missing username is
        ``ignore`` (the next authenticator decides; at the end of the chain, ``not_authorized``); a known user
        with the wrong password is ``deny`` (``bad_username_or_password``)."""
        user = self.users.get(username) if username is not None else None
        if user is None:
            return "ignore", False
        if isinstance(password, bytes):
            password = password.decode("utf-8", "replace")
        if password is None or not hmac.compare_digest(hash_password(password, user.salt), user.password_hash.lower()):
            return "deny", False
        return "allow", user.is_superuser

    def conclude(self, decision: str, superuser: bool, *, denied_code: int) -> tuple[int, bool]:
        """The chain's final answer as a CONNACK code, counted: ``ignore`` everywhere is ``not_authorized``."""
        self.metrics["client.authenticate"] += 1
        if decision == "allow":
            return CONNACK_ACCEPTED, superuser
        self.metrics["client.auth.failure"] += 1
        return (denied_code if decision == "deny" else CONNACK_NOT_AUTHORIZED), False

    def list_users(self, like: str | None = None) -> list[User]:
        return [u for u in self.users.values() if not like or like in u.user_id]

    def import_users(self, entries: Any, hashed: bool) -> dict[str, int]:
        if not isinstance(entries, list):
            raise BadRequest("the body must be a JSON list of users")
        result = {"total": len(entries), "success": 0, "override": 0, "skipped": 0, "failed": 0}
        for entry in entries:
            try:
                user = _user_from(entry, hashed)
            except BadRequest as exc:
                log.warning("import_users: %s", exc)
                result["failed"] += 1
                continue
            old = self.users.get(user.user_id)
            if old is None:
                result["success"] += 1
            elif old == user:
                result["skipped"] += 1
                continue
            else:
                result["override"] += 1
            self.users[user.user_id] = user
        self._save_users()
        return result

    def create_user(self, body: Any) -> User | None:
        """A user from `{"user_id", "password", "is_superuser"}`, hashed here; None if the id is taken."""
        user = _user_from(body, hashed=False)
        if user.user_id in self.users:
            return None
        self.users[user.user_id] = user
        self._save_users()
        return user

    def update_user(self, user_id: str, body: Any) -> User | None:
        """A new password and/or superuser flag for an existing user; None if there is no such user."""
        old = self.users.get(user_id)
        if old is None:
            return None
        if not isinstance(body, dict) or not ({"password", "is_superuser"} & body.keys()):
            raise BadRequest("give password and/or is_superuser")
        fields = {"user_id": user_id, "is_superuser": body.get("is_superuser", old.is_superuser)}
        if "password" in body:
            new = _user_from({**fields, "password": body["password"]}, hashed=False)
        else:
            new = _user_from({**fields, "password_hash": old.password_hash, "salt": old.salt}, hashed=True)
        self.users[user_id] = new
        self._save_users()
        return new

    def delete_user(self, user_id: str) -> bool:
        if self.users.pop(user_id, None) is None:
            return False
        self._save_users()
        return True

    # --- authorization ----------------------------------------------------------------------------------------

    def set_source(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        if body.get("type", "file") != "file":
            raise BadRequest("type must be file")
        rules_text, enable = body.get("rules"), body.get("enable", True)
        if not isinstance(rules_text, str) or not isinstance(enable, bool):
            raise BadRequest("rules must be a string and enable a boolean")
        try:
            rules = acl.parse(rules_text)
        except acl.AclError as exc:
            raise BadRequest(f"invalid rules: {exc}") from None
        self.rules_text, self.rules, self.source_enabled = rules_text, rules, enable
        self._save_authz()

    def source(self) -> dict[str, Any]:
        return {"type": "file", "enable": self.source_enabled, "rules": self.rules_text}

    def set_settings(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        settings = dict(self.settings)
        for key, value in body.items():
            if key == "no_match" and value in ("allow", "deny"):
                settings[key] = value
            elif key == "deny_action" and value in ("ignore", "disconnect"):
                settings[key] = value
            elif key == "cache" and isinstance(value, dict) and isinstance(value.get("enable", False), bool):
                settings[key] = {**settings["cache"], **value}
            else:
                raise BadRequest(f"invalid value for {key!r}")
        self.settings = settings
        self._save_authz()
        return settings

    def authorize(self, username: str | None, clientid: str, superuser: bool, action: str, topic: str) -> bool:
        """Whether a client may `action` ("publish"/"subscribe") `topic`; counts the decision."""
        if superuser:
            self.metrics["authorization.superuser"] += 1
            self.metrics["authorization.allow"] += 1
            return True
        decision = acl.check(self.rules, username, clientid, action, topic) if self.source_enabled else "nomatch"
        if decision == "nomatch":
            self.metrics["authorization.nomatch"] += 1
            decision = self.settings["no_match"]
        self.metrics[f"authorization.{decision}"] += 1
        return decision == "allow"

    # --- persistence ------------------------------------------------------------------------------------------

    def _write(self, name: str, data: Any) -> None:
        if not self.state_dir:
            return
        path = self.state_dir / name
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)

    def _save_users(self) -> None:
        self._write("users.json", [asdict(u) for u in self.users.values()])

    def _save_authz(self) -> None:
        self._write("authz.json", {"rules": self.rules_text, "enable": self.source_enabled, "settings": self.settings})

    def _load(self) -> None:
        assert self.state_dir is not None
        users, authz = self.state_dir / "users.json", self.state_dir / "authz.json"
        try:
            if users.exists():
                self.users = {u["user_id"]: User(**u) for u in json.loads(users.read_text())}
            if authz.exists():
                data = json.loads(authz.read_text())
                self.rules = acl.parse(data["rules"])
                self.rules_text, self.source_enabled = data["rules"], bool(data["enable"])
                self.settings = {**self.settings, **data["settings"]}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable state in %s: %s", self.state_dir, exc)
