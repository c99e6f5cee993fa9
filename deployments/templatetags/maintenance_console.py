"""The console's banner of announced platform maintenance (``deployments.maintenance.planned``), shown on the
deployment pages: what, on which deployment, in which window occurrence."""

from __future__ import annotations

from django import template

from deployments.maintenance.selectors import planned_maintenance_upcoming

register = template.Library()


@register.inclusion_tag("console/deployments/_planned_maintenance_banner.html", takes_context=True)
def planned_maintenance_banner(context: template.Context, deployment_id: str = "") -> dict:
    """The organization's announced maintenance of the coming week; of one deployment with ``deployment_id``."""
    request = context.get("request")
    principal = getattr(request, "principal", None)
    if principal is None:
        return {"planned": []}
    planned = planned_maintenance_upcoming(organization_id=principal.organization.pk)
    if principal.is_project_limited:
        planned = [p for p in planned if principal.can_see_project(p.deployment.project_id)]
    if deployment_id:
        planned = [p for p in planned if p.deployment_id == deployment_id]
    return {"planned": planned}
