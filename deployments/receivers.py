"""What deployments does when something happens in an app below it; ``DeploymentsConfig.ready`` registers
these on the hooks they answer (``projects.hooks``)."""

from __future__ import annotations

from deployments import selectors
from projects.models import Project


def project_deployments_block_delete(*, project: Project) -> str | None:
    """``project_delete_blockers``: a project is deleted only once its deployments are."""
    count = selectors.deployment_count_for_project(project_id=project.id)
    return f"The project still has {count} deployment(s); delete them first." if count else None
