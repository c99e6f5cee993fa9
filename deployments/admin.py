from django.contrib import admin

from controlplane.admin_base import ReadOnlyModelAdmin
from deployments.models import Region, Spec, SpecPrice


class SpecPriceInline(admin.TabularInline):
    model = SpecPrice
    extra = 0
    can_delete = False
    readonly_fields = ("currency", "hourly", "annual")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Region)
class RegionAdmin(ReadOnlyModelAdmin):
    """The catalog comes from deployments/data/catalog.json (manage.py sync_catalog), not from hand edits."""

    list_display = ("id", "provider", "code", "name", "tiers", "sites", "active")
    list_filter = ("provider", "active")


@admin.register(Spec)
class SpecAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "tier", "max_connections", "max_messages_per_second", "replicas", "active")
    list_filter = ("tier", "active")
    inlines = [SpecPriceInline]
