"""Alert rules: create, update, delete (each audited)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from alerts.models import ORGANIZATION_METRICS, AlertChannel, AlertRule
from alerts.services.validation import INVALID_FIELDS
from controlplane.db import lock_row
from controlplane.errors import field_invalid
from deployments.models import Deployment
from projects.audit import audit_record
from projects.models import Project
from projects.roles import Perm
from projects.tenancy import Principal

WRITE_PERM = Perm.DEPLOYMENTS_WRITE


# --- rules ---------------------------------------------------------------------------------------------------
def _rule_refs(principal: Principal, *, project_id: str | None, deployment_id: str | None,
               channel_ids: list[str] | None) -> dict[str, Any]:
    refs: dict[str, Any] = {}
    if project_id is not None:
        project = Project.objects.filter(organization=principal.organization, pk=project_id).first()
        if project is None or not principal.can_see_project(project.id):
            raise field_invalid("project", f"No project {project_id}.", detail=INVALID_FIELDS)
        refs["project"] = project
    if deployment_id is not None:
        deployment = Deployment.objects.filter(organization=principal.organization, pk=deployment_id).exclude(
            status="deleted").first()
        if deployment is None or not principal.can_see_project(deployment.project_id):
            raise field_invalid("deployment", f"No deployment {deployment_id}.", detail=INVALID_FIELDS)
        refs["deployment"] = deployment
    if channel_ids is not None:
        channels = list(AlertChannel.objects.filter(organization=principal.organization, pk__in=channel_ids))
        missing = sorted(set(channel_ids) - {c.id for c in channels})
        if missing:
            raise field_invalid("channels", f"No alert channel(s) {', '.join(missing)}.", detail=INVALID_FIELDS)
        refs["channels"] = channels
    return refs


def _check_organization_metric(metric: str, deployment: Deployment | None) -> None:
    if metric in ORGANIZATION_METRICS and deployment is not None:
        raise field_invalid("deployment", f"{metric} is a condition of the whole organization: leave deployment empty.",
                            detail=INVALID_FIELDS)


def rule_create(*, principal: Principal, name: str, project: str, metric: str, operator: str, threshold: Any,
                duration_s: int = 300, severity: str = "warning", channels: list[str] | None = None,
                repeat_interval_s: int = 3600, enabled: bool = True, deployment: str | None = None) -> AlertRule:
    principal.require(WRITE_PERM)
    refs = _rule_refs(principal, project_id=project, deployment_id=deployment, channel_ids=channels or [])
    if "deployment" in refs and refs["deployment"].project_id != refs["project"].id:
        raise field_invalid("deployment", "The deployment is not in the rule's project.", detail=INVALID_FIELDS)
    _check_organization_metric(metric, refs.get("deployment"))
    rule = AlertRule(organization=principal.organization, project=refs["project"], deployment=refs.get("deployment"),
                     name=name.strip(), metric=metric, operator=operator, threshold=threshold, duration_s=duration_s,
                     severity=severity, repeat_interval_s=repeat_interval_s, enabled=enabled)
    with transaction.atomic():
        rule.save()
        rule.channels.set(refs["channels"])
        audit_record(principal=principal, action="alert_rule.create", target=rule,
                     changes={"name": rule.name, "metric": metric, "operator": operator, "threshold": str(threshold),
                              "duration_s": duration_s, "channels": [c.id for c in refs["channels"]]})
    return rule


RULE_FIELDS = ("name", "metric", "operator", "threshold", "duration_s", "severity", "repeat_interval_s", "enabled")


def rule_update(*, principal: Principal, rule: AlertRule, **updates: Any) -> AlertRule:
    principal.require(WRITE_PERM)
    refs = _rule_refs(principal, project_id=None,
                      deployment_id=updates.get("deployment") if updates.get("deployment") else None,
                      channel_ids=updates.get("channels"))
    with transaction.atomic():
        rule = lock_row(AlertRule, rule.pk, organization=principal.organization)
        changes: dict[str, Any] = {}
        for field in RULE_FIELDS:
            if field in updates and updates[field] != getattr(rule, field):
                changes[field] = [str(getattr(rule, field)), str(updates[field])]
                setattr(rule, field, updates[field])
        if "deployment" in updates:
            new = refs.get("deployment")
            if new is not None and new.project_id != rule.project_id:
                raise field_invalid("deployment", "The deployment is not in the rule's project.", detail=INVALID_FIELDS)
            if (new.id if new else None) != rule.deployment_id:
                changes["deployment"] = [rule.deployment_id, new.id if new else None]
                rule.deployment = new
        _check_organization_metric(rule.metric, rule.deployment)
        rule.updated_at = timezone.now()
        rule.save()
        if "channels" in refs:
            changes["channels"] = [c.id for c in refs["channels"]]
            rule.channels.set(refs["channels"])
        audit_record(principal=principal, action="alert_rule.update", target=rule, changes=changes)
    return rule


def rule_delete(*, principal: Principal, rule: AlertRule) -> None:
    principal.require(WRITE_PERM)
    with transaction.atomic():
        audit_record(principal=principal, action="alert_rule.delete", target=rule, changes={"name": rule.name})
        rule.delete()
