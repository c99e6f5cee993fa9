"""What alerts does when something happens in an app below it; ``AlertsConfig.ready`` registers these on the
hooks they answer (``projects.hooks``)."""

from __future__ import annotations

from typing import Any

from alerts.services.defaults import organization_rules_rehome, project_default_rules_create
from projects.models import Project


def project_default_rules_add(*, project: Project) -> dict[str, Any]:
    """``project_created``: every new project starts with the default rules (and the owners' channel)."""
    return {"alert_rules": project_default_rules_create(project=project)}


def project_organization_rules_keep(*, project: Project) -> dict[str, Any] | None:
    """``project_deleting``: organization-wide rules (payment_failed) must outlive the project they are stored
    on, so they move to another project of the organization."""
    moved = organization_rules_rehome(project=project)
    return {"alert_rules_moved": moved} if moved else None
