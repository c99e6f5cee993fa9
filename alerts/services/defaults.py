"""The default rules and the owners' channel every new project (and organization) starts with."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from alerts.models import ORGANIZATION_METRICS, AlertChannel, AlertRule, ChannelType
from alerts.services.channels import MAX_RECIPIENTS
from projects import facade as project_selectors
from projects.audit import audit_record
from projects.models import Organization, Project
from projects.roles import Role
from projects.tenancy import Principal

# --- defaults created with each project -----------------------------------------------------------------------
OWNERS_CHANNEL_KEY = "owners"
#: The rules every new project starts with; ordinary rules afterwards (editable, deletable, API-visible).
DEFAULT_RULES: tuple[dict[str, Any], ...] = (
    {"default_key": "connections_high", "name": "Connections above 80% of the spec", "metric": "connections_pct",
     "operator": ">", "threshold": Decimal(80), "duration_s": 300, "severity": "warning"},
    {"default_key": "deployment_failed", "name": "Deployment failed", "metric": "deployment_failed",
     "operator": ">=", "threshold": Decimal(1), "duration_s": 0, "severity": "critical"},
    {"default_key": "peering_failed", "name": "VPC peering failed", "metric": "peering_failed",
     "operator": ">=", "threshold": Decimal(1), "duration_s": 0, "severity": "critical"},
    # Spikes, not background noise: a few failed logins or dropped QoS 0 messages a second are normal.
    {"default_key": "auth_failures_spike", "name": "Authentication failures spike", "metric": "auth_failures_rate",
     "operator": ">", "threshold": Decimal(50), "duration_s": 300, "severity": "warning"},
    {"default_key": "messages_dropped_spike", "name": "Dropped messages spike", "metric": "messages_dropped_rate",
     "operator": ">", "threshold": Decimal(100), "duration_s": 600, "severity": "warning"},
)
#: Organization conditions: one rule per organization, created with its first project (re-notified daily).
ORGANIZATION_DEFAULT_RULES: tuple[dict[str, Any], ...] = (
    {"default_key": "payment_failed", "name": "Payment failed", "metric": "payment_failed", "operator": ">=",
     "threshold": Decimal(1), "duration_s": 0, "severity": "critical", "repeat_interval_s": 86400},
)


def owners_channel_ensure(*, organization: Organization, create: bool) -> AlertChannel | None:
    """The organization's default "Owners (email)" channel, to its owners' addresses as they are now.

    Created only when asked (with the organization's first project, or by the backfill) and only if the
    organization has no channel yet: one it deleted is not brought back, and one that set up its own channels
    does not get an extra one behind its back.
    """
    channel = AlertChannel.objects.filter(organization=organization, default_key=OWNERS_CHANNEL_KEY).first()
    if channel is not None or not create or AlertChannel.objects.filter(organization=organization).exists():
        return channel
    recipients = project_selectors.member_emails(organization=organization, roles=[Role.OWNER])[:MAX_RECIPIENTS]
    if not recipients:
        return None
    channel = AlertChannel(organization=organization, name="Owners (email)", type=ChannelType.EMAIL,
                           config={"recipients": recipients}, default_key=OWNERS_CHANNEL_KEY)
    try:
        with transaction.atomic():  # a savepoint: a concurrent first project may have created it
            channel.save()
    except IntegrityError:
        return AlertChannel.objects.filter(organization=organization, default_key=OWNERS_CHANNEL_KEY).first()
    return channel


def project_default_rules_create(*, project: Project) -> dict[str, Any]:
    """The default rules of a new project, in the caller's transaction; returns what it created, for the audit
    event of the project's creation (``alerts.receivers`` runs it on ``projects.hooks.project_created``). No
    permission check of its own: it is part of creating the project."""
    organization = project.organization
    first = not Project.objects.filter(organization=organization).exclude(pk=project.pk).exists()
    specs = list(DEFAULT_RULES)
    if first or not AlertRule.objects.filter(
            organization=organization, default_key__in=[r["default_key"] for r in ORGANIZATION_DEFAULT_RULES]).exists():
        specs += ORGANIZATION_DEFAULT_RULES
    with transaction.atomic():
        channel = owners_channel_ensure(organization=organization, create=first)
        now = timezone.now()
        rules = AlertRule.objects.bulk_create(
            AlertRule(organization=organization, project=project, created_at=now, updated_at=now, **spec)
            for spec in specs)
        if channel is not None:
            through = AlertRule.channels.through
            through.objects.bulk_create(through(alertrule_id=rule.id, alertchannel_id=channel.id) for rule in rules)
    return {"rules": {rule.id: rule.default_key for rule in rules}, "channel": channel.id if channel else None}


def organization_rules_rehome(*, project: Project) -> list[str]:
    """Moves the organization-condition rules (``payment_failed``) stored on ``project`` to the organization's
    oldest other project, in the caller's transaction, before ``project`` is deleted; returns their ids.

    Such a rule is about the whole organization and only lives on a project because every rule has one: left
    on the project, it (and its open incident) would be cascaded away with it and the organization would stop
    hearing about failed payments without anyone choosing so. With no other project left they go; the next
    project created gets the defaults again (``project_default_rules_create``).
    """
    heir = (Project.objects.filter(organization_id=project.organization_id).exclude(pk=project.pk)
            .order_by("created_at", "id").first())
    rules = AlertRule.objects.filter(project=project, metric__in=ORGANIZATION_METRICS)
    ids = sorted(rules.values_list("id", flat=True))
    if heir is None or not ids:
        return []
    rules.update(project=heir, updated_at=timezone.now())
    return ids


def default_rules_backfill() -> int:
    """Default rules for projects created before they existed (those with no default rule yet), audited as the
    system; returns how many projects got them. Idempotent: a rerun finds nothing to do."""
    done = 0
    has_defaults = AlertRule.objects.filter(project=OuterRef("pk")).exclude(default_key="")
    for project in (Project.objects.filter(~Exists(has_defaults)).select_related("organization")
                    .order_by("organization_id", "created_at", "id")):
        organization = project.organization
        with transaction.atomic():
            owners_channel_ensure(organization=organization, create=True)
            created = project_default_rules_create(project=project)
            audit_record(principal=Principal.for_system(organization), action="alert_rule.defaults_create",
                         target=project, changes=created)
        done += 1
    return done
