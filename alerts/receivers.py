"""What alerts does when something happens in an app below it; ``AlertsConfig.ready`` registers these on the
hooks they answer (``projects.hooks``, ``deployments.hooks``)."""

from __future__ import annotations

from typing import Any

from alerts.models import AlertChannel, Severity
from alerts.notices import organization_notice_email, organization_notice_send
from alerts.services.defaults import organization_rules_rehome, project_default_rules_create
from projects.facade import member_emails
from projects.models import Project
from projects.roles import Role

#: What each phase of platform maintenance tells, by ``deployments.hooks.planned_maintenance``.
_MAINTENANCE_PHASES = {
    "announced": ("Planned maintenance of {name}: {summary}", Severity.INFO,
                  "Starts in the maintenance window from {start} to {end} (UTC)."),
    "done": ("Maintenance of {name} done: {summary}", Severity.INFO, "Finished at {finished} (UTC)."),
    "failed": ("Maintenance of {name} failed: {summary}", Severity.WARNING,
               "Our operators have been told; nothing more happens without a new announcement. {error}"),
    "cancelled": ("Planned maintenance of {name} cancelled: {summary}", Severity.INFO,
                  "The maintenance announced for {start} (UTC) will not happen."),
}


def project_default_rules_add(*, project: Project) -> dict[str, Any]:
    """``project_created``: every new project starts with the default rules (and the owners' channel)."""
    return {"alert_rules": project_default_rules_create(project=project)}


def project_organization_rules_keep(*, project: Project) -> dict[str, Any] | None:
    """``project_deleting``: organization-wide rules (payment_failed) must outlive the project they are stored
    on, so they move to another project of the organization."""
    moved = organization_rules_rehome(project=project)
    return {"alert_rules_moved": moved} if moved else None


def planned_maintenance_notice(*, planned: Any, phase: str) -> None:
    """``planned_maintenance``: owners and admins by email, and a ``notice`` on every enabled alert channel of
    the organization (one ``maintenance.<phase>`` event, paired by its dedup key)."""
    title_format, severity, summary_format = _MAINTENANCE_PHASES[phase]
    deployment = planned.deployment
    values = {"name": deployment.name, "summary": planned.summary,
              "start": f"{planned.window_start:%Y-%m-%d %H:%M}", "end": f"{planned.window_end:%Y-%m-%d %H:%M}",
              "finished": f"{planned.finished_at:%Y-%m-%d %H:%M}" if planned.finished_at else "",
              "error": planned.error}
    organization = deployment.organization
    notice = {
        "organization": organization, "event_type": f"maintenance.{phase}",
        "title": title_format.format(**values), "summary": summary_format.format(**values).strip(),
        "severity": severity, "dedup_key": f"maintenance:{planned.pk}",
        "details": {"maintenance": {"id": planned.pk, "kind": planned.kind, "status": planned.status,
                                    "window_start": planned.window_start.isoformat(),
                                    "window_end": planned.window_end.isoformat()},
                    "deployment": {"id": deployment.id, "name": deployment.name}},
        "facts": [("Deployment", f"{deployment.name} ({deployment.id})"), ("What", planned.summary),
                  ("Window (UTC)", f"{values['start']} to {values['end']}")],
    }
    organization_notice_send(channels=AlertChannel.objects.filter(organization=organization, enabled=True),
                             **notice)
    organization_notice_email(recipients=member_emails(organization=organization, roles=[Role.OWNER, Role.ADMIN]),
                              **notice)
