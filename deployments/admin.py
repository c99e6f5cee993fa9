import json

from django.contrib import admin, messages
from django.utils.html import format_html

from controlplane import errors
from deployments import selectors, services
from deployments.maintenance import planned
from deployments.models import (
    CertificateAuthority,
    Deployment,
    DeploymentEvent,
    Peering,
    PeeringEvent,
    PlannedMaintenance,
    PlannedMaintenanceKind,
    Region,
    ServerCertificate,
    Spec,
    SpecPrice,
)
from deployments.peering import services as peering_services
from deployments.provisioning import desired_cluster_spec
from deployments.upgrades.models import BrokerVersion, DeploymentUpgrade
from k8s.render import render
from projects.ops_admin import AuditedModelAdmin, ReadOnlyModelAdmin, ReadOnlyTabularInline, staff_principal


class SpecPriceInline(ReadOnlyTabularInline):
    model = SpecPrice
    readonly_fields = ("currency", "hourly", "stopped_hourly", "annual")


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


@admin.register(BrokerVersion)
class BrokerVersionAdmin(AuditedModelAdmin):
    """EMQX versions: ops add a release and move versions from current to supported to deprecated (with the end of
    support date customers see); audited. Never deleted: deployments and upgrades name versions."""

    list_display = ("version", "status", "end_of_support", "image")
    list_filter = ("status",)
    ordering = ("-version",)

    def get_readonly_fields(self, request, obj=None):
        return ("version", "image") if obj is not None else ()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(DeploymentUpgrade)
class DeploymentUpgradeAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "deployment", "from_version", "to_version", "status", "step", "scheduled_for", "error")
    list_filter = ("status", "to_version")


class DeploymentEventInline(ReadOnlyTabularInline):
    model = DeploymentEvent
    fields = ("created_at", "from_status", "to_status", "spec", "reason", "actor_label")
    readonly_fields = fields
    ordering = ("-created_at", "-id")


@admin.register(Deployment)
class DeploymentAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "name", "organization", "tier", "spec", "region", "status", "status_changed_at")
    list_filter = ("status", "tier", "region")
    search_fields = ("id", "name", "organization__id", "organization__name", "project__id")
    list_select_related = ("organization", "spec", "region")
    exclude = ("node_cookie", "dashboard_password")
    readonly_fields = ("http_auth_state", "rendered_manifests")
    inlines = [DeploymentEventInline]
    actions = ["force_reconcile", "mark_failed", "plan_certificate_rotation"]

    def has_change_permission(self, request, obj=None) -> bool:
        # Actions need it; every field stays read-only.
        return obj is None and request.user.is_staff

    @admin.display(description="HTTP authentication")
    def http_auth_state(self, obj: Deployment) -> str:
        # The console's HTTP authentication page reads the same selector: one answer to "is it live?".
        rollout = selectors.http_auth_rollout(deployment=obj)
        if rollout is None:
            return "(not configured)"
        return format_html('<span id="http-auth-state" data-state="{}"><strong>{}</strong> {}</span>', rollout.state,
                           rollout.label, rollout.text)

    @admin.display(description="Rendered Kubernetes objects")
    def rendered_manifests(self, obj: Deployment) -> str:
        desired = desired_cluster_spec(obj)
        if desired is None:
            return "(nothing: the deployment is not meant to be in a cluster now)"
        objects = render(desired)
        for item in objects:
            if item["kind"] == "Secret":
                item["stringData"] = {key: "•••" for key in item.get("stringData", {})}
        return format_html("<pre tabindex='0' style='max-height:40em;overflow:auto'>{}</pre>",
                           json.dumps(objects, indent=2, sort_keys=False))

    @admin.action(description="Force reconcile now")
    def force_reconcile(self, request, queryset) -> None:
        for deployment in queryset:
            services.deployment_force_reconcile(principal=staff_principal(request, deployment), deployment=deployment)
        self.message_user(request, f"Reconcile queued for {queryset.count()} deployment(s).", messages.SUCCESS)

    @admin.action(description="Mark failed (stops the current operation)")
    def mark_failed(self, request, queryset) -> None:
        for deployment in queryset:
            services.deployment_mark_failed(principal=staff_principal(request, deployment), deployment=deployment,
                                            reason=f"Marked failed by operator {request.user.email}.")
        self.message_user(request, f"Marked {queryset.count()} deployment(s) failed.", messages.WARNING)


    @admin.action(description="Plan a certificate rotation in the next maintenance window (announced a week ahead)")
    def plan_certificate_rotation(self, request, queryset) -> None:
        planned_ids = [planned.planned_maintenance_plan(
            deployment=deployment, kind=PlannedMaintenanceKind.CERTIFICATE_ROTATION,
            summary="A new TLS certificate for the broker (the nodes restart one at a time to load it)",
            principal=staff_principal(request, deployment)).pk for deployment in queryset]
        self.message_user(request, f"Certificate rotation planned for {len(planned_ids)} deployment(s); see "
                                   f"Planned maintenance.", messages.SUCCESS)


@admin.register(PlannedMaintenance)
class PlannedMaintenanceAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "deployment", "organization", "kind", "status", "window_start", "announced_at",
                    "finished_at", "requested_by")
    list_filter = ("status", "kind")
    search_fields = ("id", "deployment__id", "deployment__name", "organization__id")
    list_select_related = ("deployment", "organization")
    ordering = ("-window_start",)
    actions = ["cancel"]

    @admin.action(description="Cancel (only before it starts; whoever was told is told)")
    def cancel(self, request, queryset) -> None:
        cancelled = sum(planned.planned_maintenance_cancel(planned=work, principal=staff_principal(request, work))
                        for work in queryset.select_related("deployment"))
        self.message_user(request, f"Cancelled {cancelled} of {queryset.count()}.", messages.SUCCESS)


# --- VPC peering ------------------------------------------------------------------------------------
class PeeringEventInline(ReadOnlyTabularInline):
    model = PeeringEvent
    fields = ("created_at", "from_status", "to_status", "reason", "actor_label")
    readonly_fields = fields
    ordering = ("-created_at", "-id")


@admin.register(Peering)
class PeeringAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "provider", "cidr", "deployment", "organization", "status", "cloud_state", "cloud_id",
                    "status_changed_at", "expires_at")
    list_filter = ("status", "provider", "deployment__region")
    search_fields = ("id", "cloud_id", "deployment__id", "organization__id", "organization__name", "account_id",
                     "vpc_id", "subscription_id", "vnet_name")
    list_select_related = ("organization", "deployment")
    inlines = [PeeringEventInline]
    actions = ["force_converge", "play_customer_side"]

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None and request.user.is_staff

    @admin.action(description="Converge now")
    def force_converge(self, request, queryset) -> None:
        for peering in queryset:
            peering_services.peering_force_converge(principal=staff_principal(request, peering), peering=peering)
        self.message_user(request, f"Converge queued for {queryset.count()} peering(s).", messages.SUCCESS)

    @admin.action(description="Play the customer's side (simulated clouds only): accept / create reverse peering")
    def play_customer_side(self, request, queryset) -> None:
        for peering in queryset:
            try:
                note = peering_services.peering_play_customer_side(principal=staff_principal(request, peering),
                                                                   peering=peering)
            except errors.DomainError as exc:
                self.message_user(request, exc.detail, messages.ERROR)
                return
            except Exception as exc:  # the simulated cloud's refusal, shown to the operator
                self.message_user(request, f"{peering.id}: {exc}", messages.ERROR)
                continue
            self.message_user(request, f"{peering.id}: {note}", messages.SUCCESS)


# --- TLS --------------------------------------------------------------------------------------------
# Read-only, and the private keys are not even fields of the pages (``exclude``): an operator sees what a client
# sees (certificates, fingerprints, expiry), never what would let someone impersonate a broker.
@admin.register(CertificateAuthority)
class CertificateAuthorityAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "region", "status", "subject", "not_before", "not_after", "retired_at")
    list_filter = ("status", "region")
    search_fields = ("id", "fingerprint_sha256", "subject")
    exclude = ("private_key_pem",)


@admin.register(ServerCertificate)
class ServerCertificateAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "deployment", "organization", "host", "authority", "not_after", "issued_at")
    list_filter = ("deployment__region",)
    search_fields = ("id", "deployment__id", "organization__id", "host", "fingerprint_sha256", "serial_number")
    list_select_related = ("deployment", "organization", "authority")
    exclude = ("private_key_pem",)
