"""Audited writes to a deployment's MQTT access: built-in database users and the ACL (imports of many users
are in ``imports``).

Every change bumps ``MqttAccess.generation`` in the same transaction as the rows, so "the broker holds
generation N" says exactly which users and rules are live. Nothing here waits on the broker.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from controlplane import errors
from controlplane.db import lock_row, save_or_conflict
from deployments.models import Deployment, MqttAccess, MqttUser
from deployments.mqtt_access import hashing
from deployments.mqtt_access.broker_api import BrokerAddressUnknown, BrokerApi, BrokerError
from deployments.mqtt_access.changes import locked_access, record_change
from deployments.mqtt_access.validation import (
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
        locked, access = locked_access(principal, deployment)
        key = username_key(username)
        if MqttUser.objects.filter(deployment=locked, username_key=key).exists():
            raise _duplicate(username)
        user = MqttUser(deployment=locked, username=username, username_key=key, algorithm=stored.algorithm,
                        password_hash=stored.password_hash, salt=stored.salt, is_superuser=is_superuser)
        save_or_conflict(user, _duplicate(username))
        record_change(access)
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
        locked, access = locked_access(principal, deployment)
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
            record_change(access)
            audit_record(principal=principal, action="deployment.mqtt_user.update", target=locked, changes=changes)
    return current


def mqtt_user_delete(*, principal: Principal, deployment: Deployment, user: MqttUser) -> None:
    principal.require(Perm.DEPLOYMENTS_WRITE)
    with transaction.atomic():
        locked, access = locked_access(principal, deployment)
        deleted, _ = MqttUser.objects.filter(pk=user.pk, deployment=locked).delete()
        if not deleted:
            raise errors.NotFound(f"No user {user.username!r} on this deployment.")
        record_change(access)
        audit_record(principal=principal, action="deployment.mqtt_user.delete", target=locked,
                     changes={"username": user.username})


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
        locked, access = locked_access(principal, deployment)
        if access.acl_rules == as_json and access.acl_no_match == no_match:
            return access
        before = {"rules": len(access.acl_rules), "no_match": access.acl_no_match}
        access.acl_rules, access.acl_no_match = as_json, no_match
        access.save(update_fields=["acl_rules", "acl_no_match", "updated_at"])
        record_change(access)
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
