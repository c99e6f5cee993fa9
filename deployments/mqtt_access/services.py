"""Audited writes to a deployment's MQTT access: built-in database users and the ACL.

Every change bumps ``MqttAccess.generation`` in the same transaction as the rows, so "the broker holds
generation N" says exactly which users and rules are live. Nothing here waits on the broker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from controlplane import errors
from controlplane.db import lock_row, save_or_conflict
from controlplane.ids import new_id
from controlplane.queue import enqueue_on_commit
from deployments.models import Deployment, MqttAccess, MqttUser
from deployments.models import DeploymentStatus as S
from deployments.mqtt_access import hashing
from deployments.mqtt_access.broker_api import BrokerAddressUnknown, BrokerApi, BrokerError
from deployments.mqtt_access.validation import (
    IMPORT_MAX,
    NO_MATCH,
    Invalid,
    acl_rules_clean,
    password_clean,
    username_clean,
    username_key,
)
from projects.audit import audit_record
from projects.roles import Perm
from projects.tenancy import Principal

UNSET: Any = object()


def _duplicate(username: str) -> errors.Conflict:
    return errors.Conflict(f"A user named {username!r} (or one that differs only in case or Unicode form) "
                           "already exists.", errors={"username": ["Already exists."]})


def _locked_access(principal: Principal, deployment: Deployment) -> tuple[Deployment, MqttAccess]:
    """The deployment and its access row, locked: one change at a time per deployment, so generations are
    gapless and a rules replace never interleaves with a user import."""
    locked = lock_row(Deployment, deployment.pk, organization=principal.organization)
    if locked.status in (S.DELETING, S.DELETED):
        raise errors.Conflict(f"The deployment is {locked.status}.")
    access, _ = MqttAccess.objects.get_or_create(deployment=locked)
    return locked, lock_row(MqttAccess, locked.pk)


PUSH_TASK = "deployments.tasks.mqtt_access_push"


def _changed(access: MqttAccess) -> None:
    """Records a change to the users or rules and has it pushed to the broker once this transaction commits."""
    access.generation += 1
    access.save(update_fields=["generation", "updated_at"])
    enqueue_on_commit(PUSH_TASK, access.deployment_id)


def _field(field_name: str, check: Any, value: object) -> Any:
    try:
        return check(value)
    except Invalid as exc:
        raise errors.field_invalid(field_name, str(exc), detail="The request has invalid fields.") from None


def mqtt_user_create(*, principal: Principal, deployment: Deployment, username: object,
                     password: object = None, is_superuser: bool = False) -> tuple[MqttUser, str | None]:
    """Adds a user; without ``password`` one is generated and returned (the only time it is ever seen)."""
    principal.require(Perm.DEPLOYMENTS_WRITE)
    username = _field("username", username_clean, username)
    generated = None
    if password is None:
        password = generated = hashing.generate_password()
    password = _field("password", password_clean, password)
    stored = hashing.hash_password(password)
    with transaction.atomic():
        locked, access = _locked_access(principal, deployment)
        key = username_key(username)
        if MqttUser.objects.filter(deployment=locked, username_key=key).exists():
            raise _duplicate(username)
        user = MqttUser(deployment=locked, username=username, username_key=key, algorithm=stored.algorithm,
                        password_hash=stored.password_hash, salt=stored.salt, is_superuser=is_superuser)
        save_or_conflict(user, _duplicate(username))
        _changed(access)
        audit_record(principal=principal, action="deployment.mqtt_user.create", target=locked,
                     changes={"username": username, "is_superuser": is_superuser,
                              "password": "generated" if generated else "set"})
    return user, generated


def mqtt_user_update(*, principal: Principal, deployment: Deployment, user: MqttUser,
                     password: object = UNSET, is_superuser: object = UNSET) -> MqttUser:
    principal.require(Perm.DEPLOYMENTS_WRITE)
    stored = None if password is UNSET else hashing.hash_password(_field("password", password_clean, password))
    if is_superuser is not UNSET and not isinstance(is_superuser, bool):
        raise errors.field_invalid("is_superuser", "Must be true or false.")
    with transaction.atomic():
        locked, access = _locked_access(principal, deployment)
        current = lock_row(MqttUser, user.pk, deployment=locked)
        changes: dict[str, Any] = {"username": current.username}
        if stored is not None:
            current.algorithm, current.password_hash, current.salt = stored.algorithm, stored.password_hash, \
                stored.salt
            changes["password"] = "changed"
        if is_superuser is not UNSET and is_superuser != current.is_superuser:
            changes["is_superuser"] = [current.is_superuser, is_superuser]
            current.is_superuser = is_superuser
        if len(changes) > 1:
            current.save()
            _changed(access)
            audit_record(principal=principal, action="deployment.mqtt_user.update", target=locked, changes=changes)
    return current


def mqtt_user_delete(*, principal: Principal, deployment: Deployment, user: MqttUser) -> None:
    principal.require(Perm.DEPLOYMENTS_WRITE)
    with transaction.atomic():
        locked, access = _locked_access(principal, deployment)
        deleted, _ = MqttUser.objects.filter(pk=user.pk, deployment=locked).delete()
        if not deleted:
            raise errors.NotFound(f"No user {user.username!r} on this deployment.")
        _changed(access)
        audit_record(principal=principal, action="deployment.mqtt_user.delete", target=locked,
                     changes={"username": user.username})


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged,
                "errors": self.errors}


@dataclass(frozen=True)
class _ImportRow:
    username: str
    key: str
    is_superuser: bool
    password: str | None  # plain rows
    stored: hashing.PasswordHash | None  # pre-hashed rows


def _import_row(raw: object) -> _ImportRow:
    if not isinstance(raw, dict):
        raise Invalid("Each user must be an object.")
    username = username_clean(raw.get("username"))
    is_superuser = raw.get("is_superuser", False)
    if not isinstance(is_superuser, bool):
        raise Invalid("is_superuser must be true or false.")
    has_hash = "password_hash" in raw
    if has_hash == ("password" in raw):
        raise Invalid("Give either password, or password_hash with salt and algorithm.")
    if not has_hash:
        return _ImportRow(username, username_key(username), is_superuser, password_clean(raw["password"]), None)
    algorithm, password_hash, salt = raw.get("algorithm"), raw.get("password_hash"), raw.get("salt", "")
    if not all(isinstance(value, str) for value in (algorithm, password_hash, salt)):
        raise Invalid("password_hash, salt and algorithm must be strings.")
    problem = hashing.imported_hash_problem(algorithm, password_hash, salt)
    if problem:
        raise Invalid(problem)
    return _ImportRow(username, username_key(username), is_superuser, None,
                      hashing.imported_hash(algorithm, password_hash, salt))


_UserState = tuple[str, bool, hashing.PasswordHash]  # username, is_superuser, hash: what an import compares


def _state(user: MqttUser | None) -> _UserState | None:
    if user is None:
        return None
    return user.username, user.is_superuser, hashing.PasswordHash(user.algorithm, user.password_hash, user.salt)


def _plan(row: _ImportRow, current: _UserState | None) -> hashing.PasswordHash | None:
    """The hash to store for ``row``, or ``None`` when the user already is exactly that (``unchanged``).
    Costs one or two PBKDF2 runs for a plain-password row."""
    if current is not None and current[:2] == (row.username, row.is_superuser):
        if row.stored is not None and row.stored == current[2]:
            return None
        if row.stored is None and hashing.verify_password(current[2], row.password or ""):
            return None
    return row.stored or hashing.hash_password(row.password or "")


def _import_rows(users: list) -> tuple[list[_ImportRow], list[dict[str, Any]]]:
    """The valid rows (one per user) and the errors of the others, by index."""
    rows, problems, seen = [], [], {}
    for index, raw in enumerate(users):
        label = raw.get("username") if isinstance(raw, dict) and isinstance(raw.get("username"), str) else None
        try:
            row = _import_row(raw)
        except Invalid as exc:
            problems.append({"index": index, "username": label, "message": str(exc)})
            continue
        if row.key in seen:
            problems.append({"index": index, "username": label,
                             "message": f"The same user as row {seen[row.key]} (usernames are compared "
                                        "ignoring case and Unicode form)."})
            continue
        seen[row.key] = index
        rows.append(row)
    return rows, problems


def _existing(deployment: Deployment, rows: list[_ImportRow]) -> dict[str, MqttUser]:
    keys = [row.key for row in rows]
    users: dict[str, MqttUser] = {}
    for start in range(0, len(keys), 5000):
        users.update((user.username_key, user) for user in MqttUser.objects.filter(
            deployment=deployment, username_key__in=keys[start:start + 5000]))
    return users


def _copy_new_users(deployment: Deployment, new: list[tuple[_ImportRow, hashing.PasswordHash]], now: Any) -> None:
    """Inserts new users with one ``COPY`` (the rows ``MqttUser(...)`` would get): a model instance and an
    ``INSERT`` parameter list per row cost ~80 µs, which made a 100,000-user import spend 8 s in
    ``bulk_create`` (COPY goes around Django's cursor wrapper: query counters and logs do not see it)."""
    if not new:
        return
    names = ("id", "deployment", "username", "username_key", "algorithm", "password_hash", "salt", "is_superuser",
             "created_at", "updated_at")
    columns = ", ".join(MqttUser._meta.get_field(name).column for name in names)
    if connection.vendor != "postgresql":  # the embedded default (SQLite) has no COPY
        MqttUser.objects.bulk_create([
            MqttUser(deployment=deployment, username=row.username, username_key=row.key, algorithm=stored.algorithm,
                     password_hash=stored.password_hash, salt=stored.salt, is_superuser=row.is_superuser,
                     created_at=now, updated_at=now) for row, stored in new], batch_size=500)
        return
    prefix = MqttUser._meta.get_field("id").prefix  # type: ignore[attr-defined]
    with connection.cursor() as cursor, \
            cursor.cursor.copy(f"COPY {MqttUser._meta.db_table} ({columns}) FROM STDIN") as copy:
        for row, stored in new:
            copy.write_row((new_id(prefix), deployment.pk, row.username, row.key, stored.algorithm,
                            stored.password_hash, stored.salt, row.is_superuser, now, now))


def mqtt_users_import(*, principal: Principal, deployment: Deployment, users: object,
                      dry_run: bool = False) -> ImportResult:
    """Creates or updates many users at once: all of them or, when any row is invalid, none (a dry run reports
    the same counts and errors and changes nothing).

    The password hashing (PBKDF2, milliseconds per row) is planned before the deployment is locked, against
    the rows as they were; under the lock only the rows another change touched meanwhile are planned again.
    Pre-hashed rows cost nothing to plan, so without a plain password they are only planned under the lock."""
    principal.require(Perm.DEPLOYMENTS_WRITE)
    if not isinstance(users, list) or not users:
        raise errors.field_invalid("users", "Must be a non-empty list of users.")
    if len(users) > IMPORT_MAX:
        raise errors.field_invalid("users", f"At most {IMPORT_MAX} users per import; split the file.")
    rows, problems = _import_rows(users)
    plain = any(row.stored is None for row in rows)
    before = {key: _state(user) for key, user in _existing(deployment, rows).items()} if plain else {}
    planned = {row.key: _plan(row, before.get(row.key)) for row in rows} if plain else {}
    result = ImportResult(errors=problems)
    with transaction.atomic():
        locked, access = _locked_access(principal, deployment)
        existing = _existing(locked, rows)
        creates: list[tuple[_ImportRow, hashing.PasswordHash]] = []
        updates, now = [], timezone.now()
        for row in rows:
            current = existing.get(row.key)
            state = _state(current)
            stored = planned[row.key] if plain and state == before.get(row.key) else _plan(row, state)
            if stored is None:
                result.unchanged += 1
            elif current is None:
                result.created += 1
                creates.append((row, stored))
            else:
                result.updated += 1
                current.username, current.is_superuser, current.updated_at = row.username, row.is_superuser, now
                current.algorithm, current.password_hash, current.salt = stored.algorithm, stored.password_hash, \
                    stored.salt
                updates.append(current)
        if dry_run:
            return result
        if result.errors:
            raise errors.ValidationFailed(
                f"{len(result.errors)} of {len(users)} users cannot be imported; nothing was changed.",
                errors={f"users[{e['index']}]": [e["message"]] for e in result.errors[:100]})
        _copy_new_users(locked, creates, now)
        MqttUser.objects.bulk_update(updates, ["username", "is_superuser", "algorithm", "password_hash", "salt",
                                               "updated_at"], batch_size=2000)
        if creates or updates:
            _changed(access)
            audit_record(principal=principal, action="deployment.mqtt_user.import", target=locked,
                         changes={"created": result.created, "updated": result.updated,
                                  "unchanged": result.unchanged})
    return result


def acl_put(*, principal: Principal, deployment: Deployment, rules: object, no_match: object = "deny") -> MqttAccess:
    """Replaces the deployment's ACL: the ordered rules and what happens when none applies."""
    principal.require(Perm.DEPLOYMENTS_WRITE)
    cleaned, problems = acl_rules_clean(rules)
    if no_match not in NO_MATCH:
        problems["no_match"] = ['Must be "deny" or "allow".']
    if problems:
        raise errors.ValidationFailed("The ACL has invalid rules.", errors=problems)
    as_json = [rule.as_json() for rule in cleaned]
    with transaction.atomic():
        locked, access = _locked_access(principal, deployment)
        if access.acl_rules == as_json and access.acl_no_match == no_match:
            return access
        before = {"rules": len(access.acl_rules), "no_match": access.acl_no_match}
        access.acl_rules, access.acl_no_match = as_json, no_match
        access.save(update_fields=["acl_rules", "acl_no_match", "updated_at"])
        _changed(access)
        audit_record(principal=principal, action="deployment.acl.update", target=locked,
                     changes={"before": before, "rules": len(as_json), "no_match": no_match})
    return access



def client_disconnect(*, principal: Principal, deployment: Deployment, clientid: str) -> None:
    """Disconnects a connected client now (it may reconnect if its credentials still allow it)."""
    principal.require(Perm.DEPLOYMENTS_WRITE)
    try:
        kicked = BrokerApi.for_deployment(deployment).client_kick(clientid)
    except BrokerAddressUnknown:
        kicked = False  # no broker the control plane may call: nobody can be connected to it
    except BrokerError as exc:
        raise errors.Unavailable(f"The broker cannot be reached right now: {exc}") from exc
    if not kicked:
        raise errors.NotFound(f"No client {clientid!r} is connected.")
    audit_record(principal=principal, action="deployment.mqtt_client.disconnect", target=deployment,
                 changes={"clientid": clientid})
