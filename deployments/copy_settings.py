"""Copying one deployment's access settings onto another in one operation (issue 18, item 5).

What is copied: the custom HTTP authentication/authorization configuration (``HttpAuthConfig``, header values
included) and the MQTT ACL (``MqttAccess.acl_rules`` and ``acl_no_match``). The target's own are replaced;
a source without an HTTP auth configuration removes the target's. Built-in database users are not settings
(their passwords are the customers' credentials, per deployment) and are not copied.

Header values are secrets: they go from one encrypted field to the other inside this process and are never put
in a response, an audit event or a log line (the audit keeps header *names*, as ``http_auth_put`` does).

The operation (``copy_settings``) records its steps ``http_auth``, ``acl`` and ``apply``; the rows are written in
the request, so it is recorded done once the apply is scheduled. The apply then runs the normal path: the ACL is
pushed to the broker (no restart), and a changed HTTP auth configuration rolls the nodes one at a time
(``provisioning``'s rolling restart, watched as always).
"""

from __future__ import annotations

import json
from typing import Any

from django.db import transaction

from controlplane import errors
from controlplane.db import lock_row
from deployments.http_auth.validation import KINDS, PREFIX, check_request_url, request_spec
from deployments.lifecycle import schedule_apply
from deployments.models import Deployment, HttpAuthConfig, MqttAccess, Operation, OperationType
from deployments.models import DeploymentStatus as S
from deployments.mqtt_access.changes import record_change
from deployments.operations.progress import operation_start, operation_step, operation_succeed
from projects.audit import audit_record
from projects.roles import Perm
from projects.tenancy import Principal

SETTLED = (S.RUNNING, S.STOPPED)
STEPS = ["http_auth", "acl", "apply"]
_HTTP_FIELDS = ("enabled",) + tuple(f"{PREFIX[kind]}_{name}" for kind in KINDS
                                    for name in ("method", "url", "headers", "params", "timeout_ms"))


def _http_summary(config: HttpAuthConfig | None) -> dict[str, Any] | None:
    """What the audit keeps of a configuration: never a header value."""
    if config is None:
        return None
    return {"enabled": config.enabled, "authentication_url": config.authn_url,
            "authorization_url": config.authz_url,
            "headers": {kind: sorted(json.loads(getattr(config, f"{PREFIX[kind]}_headers") or "{}"))
                        for kind in KINDS}}


def _copy_http_auth(principal: Principal, source: Deployment, target: Deployment) -> tuple[bool, dict | None]:
    """Makes the target's HTTP auth configuration the source's; returns whether it changed, and its summary."""
    theirs = HttpAuthConfig.objects.filter(deployment=source).first()
    mine = HttpAuthConfig.objects.select_for_update().filter(deployment=target).first()
    if theirs is None:
        if mine is None:
            return False, None
        mine.delete()
        return True, None
    if mine is None:
        mine = HttpAuthConfig(organization=principal.organization, deployment=target, generation=0)
    elif all(getattr(mine, name) == getattr(theirs, name) for name in _HTTP_FIELDS):
        return False, _http_summary(mine)
    for name in _HTTP_FIELDS:
        setattr(mine, name, getattr(theirs, name))  # the encrypted fields are re-encrypted on save
    mine.generation += 1
    mine.last_tests = {}  # tests of the target's old service say nothing of this one
    mine.save()
    return True, _http_summary(mine)


def _copy_acl(source: Deployment, target: Deployment) -> bool:
    theirs = MqttAccess.objects.filter(deployment=source).first()
    rules, no_match = (theirs.acl_rules, theirs.acl_no_match) if theirs else ([], "deny")
    MqttAccess.objects.get_or_create(deployment=target)
    mine = lock_row(MqttAccess, target.pk)
    if mine.acl_rules == rules and mine.acl_no_match == no_match:
        return False
    mine.acl_rules, mine.acl_no_match = rules, no_match
    mine.save(update_fields=["acl_rules", "acl_no_match", "updated_at"])
    record_change(mine)  # pushed to the broker on commit, like an ACL PUT
    return True


def deployment_copy_settings(*, principal: Principal, target: Deployment, source: Deployment) -> Operation:
    """Replaces ``target``'s HTTP auth configuration and ACL with ``source``'s, as one operation. Both must be
    deployments the principal sees (the caller resolved them through the scoped selector: another
    organization's is a 404 there); the target must be settled (running or stopped), else 409."""
    principal.require(Perm.DEPLOYMENTS_WRITE)
    if source.pk == target.pk:
        raise errors.field_invalid("from", "A deployment's settings cannot be copied onto itself.")
    # The source's service URLs must be allowed for the target too (a private address inside the source's peering
    # is not inside the target's); checked as a PUT would, outside the transaction (no lock held over DNS).
    theirs = HttpAuthConfig.objects.filter(deployment=source).first()
    for kind in KINDS if theirs is not None else ():
        spec = request_spec(theirs, kind)
        if spec is not None:
            check_request_url(kind, spec.url, target)
    with transaction.atomic():
        locked = lock_row(Deployment, target.pk, organization=principal.organization)
        if locked.status not in SETTLED:
            raise errors.Conflict(f"Cannot copy settings into a deployment that is {locked.status} "
                                  "(it must be running or stopped).")
        source = lock_row(Deployment, source.pk, organization=principal.organization)
        operation = operation_start(organization_id=locked.organization_id, type=OperationType.COPY_SETTINGS,
                                    deployment=locked, steps=STEPS, requested_by=principal.actor_label,
                                    params={"from": source.pk})
        http_changed, http_summary = _copy_http_auth(principal, source, locked)
        operation_step(operation, "acl")
        acl_changed = _copy_acl(source, locked)
        operation_step(operation, "apply")
        if http_changed:
            locked.desired_generation += 1
            locked.save(update_fields=["desired_generation", "updated_at"])
            schedule_apply(locked)  # a rolling restart loads the configuration
        operation = operation_succeed(operation)
        audit_record(principal=principal, action="deployment.settings.copy", target=locked,
                     changes={"from": source.pk, "http_auth": {"changed": http_changed, "after": http_summary},
                              "acl": {"changed": acl_changed}})
    return operation
