"""The ops site's base for every app's ``admin.py``: read-mostly admin classes whose every staff write lands in
the audit log, and the staff principal that ops actions pass to services (``staff_principal``)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import models
from django.http import HttpRequest

from projects.audit import audit_record
from projects.models import Organization
from projects.tenancy import Principal, client_ip


def _organization_of(obj: models.Model) -> Organization | None:
    if isinstance(obj, Organization):
        return obj
    return getattr(obj, "organization", None)


def staff_principal(request: HttpRequest, obj: models.Model | None) -> Principal:
    return Principal.for_staff(request.user, _organization_of(obj) if obj is not None else None,
                               ip=client_ip(request), user_agent=request.headers.get("User-Agent", "")[:256])


def audit_staff_action(request: HttpRequest, obj: models.Model, action: str, changes: dict[str, Any]) -> None:
    principal = staff_principal(request, obj)
    audit_record(principal=principal, action=action, target=obj, changes=changes,
                 organization=_organization_of(obj))


#: The time fields a list is ordered by when its admin names no ordering: the first one the model has.
_TIME_FIELDS = ("created_at", "failed_at", "received_at", "hour_start", "issued_at", "date_joined")


def newest_first(model: type[models.Model]) -> tuple[str, ...] | list[str]:
    """The newest rows first, by the model's time field and then its id (ids are random, so alone they would
    shuffle the list); a model without one keeps its own order (invoice lines by position), else by id."""
    names = {field.name for field in model._meta.get_fields()}
    for name in _TIME_FIELDS:
        if name in names:
            return (f"-{name}", "-pk")
    return list(model._meta.ordering) or ("-pk",)


class AuditedModelAdmin(admin.ModelAdmin):
    """Staff may look at everything; what they change is recorded with who, what, when and from where.

    Lists are newest first unless the admin orders them otherwise."""

    audit_prefix: str = ""

    def get_ordering(self, request: HttpRequest) -> tuple[str, ...] | list[str]:
        return self.ordering or newest_first(self.model)

    def _action_name(self, verb: str) -> str:
        return f"ops.{self.audit_prefix or self.model._meta.model_name}.{verb}"

    def save_model(self, request, obj, form, change) -> None:
        changes = {
            name: [_plain(form.initial.get(name)), _plain(form.cleaned_data.get(name))] for name in form.changed_data
        }
        super().save_model(request, obj, form, change)
        audit_staff_action(request, obj, self._action_name("update" if change else "create"), changes)

    def delete_model(self, request, obj) -> None:
        audit_staff_action(request, obj, self._action_name("delete"), {"label": str(obj)})
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        for obj in queryset:
            audit_staff_action(request, obj, self._action_name("delete"), {"label": str(obj)})
        super().delete_queryset(request, queryset)


class ReadOnlyModelAdmin(AuditedModelAdmin):
    """For records operators inspect but never edit by hand (they change through services)."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def _plain(value: Any) -> Any:
    if isinstance(value, models.Model):
        return str(value.pk)
    if isinstance(value, (list, tuple, set)) or hasattr(value, "all") and callable(value.all):
        items = value.all() if hasattr(value, "all") else value
        return [_plain(v) for v in items]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


class ReadOnlyTabularInline(admin.TabularInline):
    """Rows shown under their parent for context, newest first; never added, edited or deleted from the ops site."""

    extra = 0
    can_delete = False

    def get_ordering(self, request: HttpRequest) -> tuple[str, ...] | list[str]:
        return self.ordering or newest_first(self.model)

    def has_add_permission(self, request, obj=None) -> bool:
        return False
