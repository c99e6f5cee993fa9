"""Delivering a deployment's users and ACL to its running broker, and repairing a broker that drifted.

The control plane is the source of truth; the broker keeps a copy in its built-in database and its ``file``
authorization source, written through the management API (no restart, no client disconnected). A push
writes the whole desired state (users overwritten by import, users the broker has and we do not removed, the
rules file and ``no_match`` replaced), so it is idempotent and a retried or duplicated push is harmless.

Generations: the push reads ``MqttAccess.generation`` *before* the users and rules, so the generation it
records as applied is never newer than what it sent (a change that lands meanwhile bumps the generation past
it and is pushed next).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import F

from deployments.models import Deployment, MqttAccess, MqttUser
from deployments.models import DeploymentStatus as S
from deployments.mqtt_access.acl_conf import render_acl_conf
from deployments.mqtt_access.broker_api import BrokerAddressUnknown, BrokerApi
from deployments.mqtt_access.selectors import DEFAULT_NO_MATCH, acl_rules

#: A broker runs and keeps what it was given in these states (scaling keeps at least one node up).
LIVE = (S.RUNNING, S.SCALING)


@dataclass(frozen=True)
class DesiredAccess:
    generation: int
    users: list[dict]  # the management API's import rows
    acl_conf: str
    no_match: str


def desired_access(deployment: Deployment) -> DesiredAccess:
    access = MqttAccess.objects.filter(deployment=deployment).first()
    generation = access.generation if access else 0  # read first: see the module docstring
    users = [{"user_id": username, "password_hash": password_hash, "salt": salt, "is_superuser": is_superuser}
             for username, password_hash, salt, is_superuser in MqttUser.objects.filter(deployment=deployment)
             .order_by("username_key").values_list("username", "password_hash", "salt", "is_superuser")]
    rules = acl_rules(access) if access else []
    return DesiredAccess(generation, users, render_acl_conf(rules), access.acl_no_match if access
                         else DEFAULT_NO_MATCH)


def _live(deployment_id: str) -> Deployment | None:
    deployment = Deployment.objects.filter(pk=deployment_id).first()
    if deployment is None or deployment.status not in LIVE or not deployment.endpoints:
        return None
    return deployment


def _record_applied(deployment: Deployment, generation: int) -> None:
    MqttAccess.objects.filter(deployment=deployment, applied_generation__lt=generation).update(
        applied_generation=generation)


def mqtt_access_push(*, deployment_id: str) -> str:
    """Writes the deployment's users and rules to its broker. ``BrokerUnavailable`` propagates (the task
    retries it); a deployment that is not running is skipped (it is pushed when the reconciler finds it
    running)."""
    deployment = _live(deployment_id)
    if deployment is None:
        return "not running"
    try:
        api = BrokerApi.for_deployment(deployment)
    except BrokerAddressUnknown as exc:
        return str(exc)
    desired = desired_access(deployment)
    wanted = {user["user_id"] for user in desired.users}
    if desired.users:
        api.users_import(desired.users)
    for user_id in sorted(api.user_ids() - wanted):
        api.user_delete(user_id)
    api.acl_file_put(desired.acl_conf)
    api.authorization_settings_put(no_match=desired.no_match)
    _record_applied(deployment, desired.generation)
    return f"generation {desired.generation}: {len(desired.users)} users"


def mqtt_access_drifted(*, deployment_id: str) -> bool:
    """Whether the broker holds something else than we want (it restarted with empty tables, someone edited
    it by hand, or a push never arrived). Reads only: three management API calls."""
    deployment = _live(deployment_id)
    if deployment is None:
        return False
    desired = desired_access(deployment)
    api = BrokerApi.for_deployment(deployment)
    return (api.user_ids() != {user["user_id"] for user in desired.users}
            or api.acl_file() != desired.acl_conf
            or api.authorization_settings().get("no_match", DEFAULT_NO_MATCH) != desired.no_match)


def deployments_needing_push() -> list[str]:
    """Live deployments whose latest change is not on the broker yet."""
    return list(MqttAccess.objects.filter(deployment__status__in=LIVE, applied_generation__lt=F("generation"))
                .values_list("deployment_id", flat=True))


def live_deployment_ids() -> list[str]:
    return list(Deployment.objects.filter(status__in=LIVE).values_list("id", flat=True))
