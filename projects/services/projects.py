"""Projects: created (other apps add their defaults through ``projects.hooks``), renamed, deleted."""

from __future__ import annotations

from typing import Any

from django.db import models, transaction

from controlplane import errors
from controlplane.db import lock_row, save_or_conflict
from projects import hooks
from projects.audit import audit_record
from projects.models import ApiKey, Invitation, Membership, Project
from projects.roles import Perm
from projects.services.validation import changes_apply, model_full_clean
from projects.tenancy import Principal


def _name_taken(name: str) -> errors.Conflict:
    return errors.Conflict(f"A project named {name!r} already exists.",
                           errors={"name": ["A project with this name already exists."]})


def project_create(*, principal: Principal, name: str, description: str = "") -> Project:
    principal.require(Perm.PROJECTS_WRITE)
    if principal.is_project_limited:
        raise errors.PermissionDenied("Members limited to some projects cannot create projects.")
    project = Project(organization=principal.organization, name=name.strip(), description=description)
    model_full_clean(project, validate_constraints=False)
    with transaction.atomic():
        save_or_conflict(project, _name_taken(project.name))
        added = project_created_announce(project=project)
        audit_record(principal=principal, action="project.create", target=project,
                     changes={"name": project.name, "description": project.description, **added})
    return project


def project_created_announce(*, project: Project) -> dict[str, Any]:
    """Tells other apps about the new ``project`` (``hooks.project_created``), in its transaction, and returns
    what they added to it, for the project's audit event."""
    return _merged(hooks.project_created.collect(project=project))


def project_update(*, principal: Principal, project: Project, name: str | None = None,
                   description: str | None = None) -> Project:
    principal.require(Perm.PROJECTS_WRITE)
    updates: dict[str, Any] = {}
    if name is not None:
        updates["name"] = name.strip()
    if description is not None:
        updates["description"] = description
    with transaction.atomic():
        project = lock_row(Project, project.pk, organization=principal.organization)
        if "name" in updates and updates["name"] != project.name and Project.objects.filter(
            organization=principal.organization, name=updates["name"]
        ).exists():
            raise _name_taken(updates["name"])
        changes = changes_apply(project, updates)
        if changes:
            model_full_clean(project, validate_constraints=False)
            # A concurrent request may have taken the name since the check above.
            save_or_conflict(project, _name_taken(project.name))
            audit_record(principal=principal, action="project.update", target=project, changes=changes)
    return project


def project_delete(*, principal: Principal, project: Project) -> None:
    principal.require(Perm.PROJECTS_WRITE)
    if principal.is_project_limited:
        # Deleting its own last project would leave a limited member with nothing, and is a decision about
        # the organization's structure: organization-wide roles make it.
        raise errors.PermissionDenied("Members limited to some projects cannot delete projects.")
    with transaction.atomic():
        project = lock_row(Project, project.pk, organization=principal.organization)
        # Other apps refuse while they still hold something of the project (deployments: its deployments).
        refusals = hooks.project_delete_blockers.collect(project=project)
        if refusals:
            raise errors.Conflict(refusals[0])
        # ...and save what must outlive it (alerts: the organization-wide rules stored on it).
        kept = _merged(hooks.project_deleting.collect(project=project))
        limits = _limits_lost_with(project)
        audit_record(principal=principal, action="project.delete", target=project,
                     changes={"name": project.name, **kept, **limits})
        project.delete()


def _merged(answers: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for answer in answers:
        merged |= answer
    return merged


def _limits_lost_with(project: Project) -> dict[str, Any]:
    """Who loses access with the project: the members, live keys and pending invitations limited to it, and
    of those, the ones it was the last project of; they stay limited and now see no project at all."""
    grants = {
        "members": Membership.objects.all(),
        "api_keys": ApiKey.objects.filter(revoked_at__isnull=True),
        "invitations": Invitation.objects.filter(status=Invitation.Status.PENDING),
    }
    lost: dict[str, list[str]] = {}
    none_left: dict[str, list[str]] = {}
    for label, qs in grants.items():
        ids = qs.filter(organization_id=project.organization_id, limited_to_projects=True, projects=project)
        # Counted apart from the filter above, which would restrict the count to this project's row.
        counted = list(qs.model.objects.filter(pk__in=ids.values("pk")).annotate(
            project_count=models.Count("projects")).order_by("pk").values_list("pk", "project_count"))
        lost[label] = [pk for pk, _ in counted]
        none_left[label] = [pk for pk, count in counted if count == 1]
    if not any(lost.values()):
        return {}
    return {"access_lost": lost, "now_without_projects": none_left}
