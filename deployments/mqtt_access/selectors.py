"""Reads of a deployment's MQTT access. The deployment comes from ``deployments.selectors.deployment_get``,
which already scoped it to the principal's organization and projects."""

from __future__ import annotations

from django.db.models import QuerySet

from controlplane import errors
from deployments.models import Deployment, DeploymentStatus, MqttAccess, MqttUser
from deployments.mqtt_access.broker_api import BrokerAddressUnknown, BrokerApi, BrokerError, ConnectedClient
from deployments.mqtt_access.validation import AclRule, acl_rules_clean, username_key

DEFAULT_NO_MATCH = "deny"


def mqtt_user_list(*, deployment: Deployment, username: str | None = None) -> QuerySet[MqttUser]:
    users = MqttUser.objects.filter(deployment=deployment).order_by("username_key", "id")
    if username:
        users = users.filter(username_key__startswith=username_key(username))
    return users


def mqtt_user_get(*, deployment: Deployment, username: str) -> MqttUser:
    user = MqttUser.objects.filter(deployment=deployment, username_key=username_key(username)).first()
    if user is None:
        raise errors.NotFound(f"No user {username!r} on this deployment.")
    return user


def mqtt_user_get_by_id(*, deployment: Deployment, user_id: str) -> MqttUser:
    """The user ``user_id`` of ``deployment`` (the console's rows: ids, which any username fits in a URL)."""
    user = MqttUser.objects.filter(deployment=deployment, pk=user_id).first()
    if user is None:
        raise errors.NotFound(f"No user {user_id} on this deployment.")
    return user


def mqtt_access_get(*, deployment: Deployment) -> MqttAccess:
    """The deployment's access row, or an unsaved one with the defaults (no rules, ``no_match: deny``)."""
    access = MqttAccess.objects.filter(deployment=deployment).first()
    return access if access is not None else MqttAccess(deployment=deployment, acl_no_match=DEFAULT_NO_MATCH)


def acl_rules(access: MqttAccess) -> list[AclRule]:
    """The stored rules as ``AclRule`` values (validated on the way in)."""
    rules, _ = acl_rules_clean(access.acl_rules)
    return rules


def connected_clients(*, deployment: Deployment, clientid: str = "", username: str = "",
                      limit: int = 100) -> list[ConnectedClient]:
    """Who is connected now, asked of the broker (``Unavailable`` when it cannot answer). A deployment that is
    not running, or whose broker has no address the control plane may call, has nobody connected to ask about."""
    if deployment.status not in (DeploymentStatus.RUNNING, DeploymentStatus.SCALING):
        return []
    try:
        return BrokerApi.for_deployment(deployment).clients(clientid=clientid, username=username, limit=limit)
    except BrokerAddressUnknown:
        return []
    except BrokerError as exc:
        raise errors.Unavailable(f"The broker cannot be reached right now: {exc}") from exc
