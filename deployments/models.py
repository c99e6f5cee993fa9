"""Catalog (regions, specs, prices), deployments and their lifecycle events."""

from __future__ import annotations

import secrets

from django.db import models
from django.utils import timezone

from controlplane.crypto import EncryptedTextField
from controlplane.ids import PrefixedIdField

# Versions and upgrades have a module of their own; importing it here also registers its models.
from deployments.upgrades.models import default_broker_version


class Tier(models.TextChoices):
    BASIC = "basic", "Basic"
    PROFESSIONAL = "professional", "Professional"
    FLAGSHIP = "flagship", "Flagship"


class Provider(models.TextChoices):
    AWS = "aws", "AWS"
    AZURE = "azure", "Azure"


class Region(models.Model):
    """A cloud region with one Kubernetes cluster; loaded from ``deployments/data/catalog.json``."""

    id = models.CharField(primary_key=True, max_length=64)
    provider = models.CharField(max_length=8, choices=Provider.choices)
    code = models.CharField(max_length=64)
    name = models.CharField(max_length=100)
    tiers = models.JSONField(default=list)
    sites = models.JSONField(default=list)
    active = models.BooleanField(default=True)
    #: The platform network deployments of this region live in, peered with customers' networks.
    #: AWS: ``account_id, vpc_id, cidr, route_table_ids, security_group_id``; Azure: ``vnet_id, cidr``.
    network = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class Spec(models.Model):
    """A deployment size: what it can carry and what it costs; loaded from the catalog file."""

    id = models.CharField(primary_key=True, max_length=64)
    tier = models.CharField(max_length=16, choices=Tier.choices)
    name = models.CharField(max_length=100)
    max_connections = models.PositiveIntegerField()
    max_messages_per_second = models.PositiveIntegerField()
    replicas = models.PositiveSmallIntegerField()
    cpu_millicores = models.PositiveIntegerField()
    memory_mib = models.PositiveIntegerField()
    active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class SpecPrice(models.Model):
    """A spec's prices in one currency. Money is Decimal, in the currency's major unit."""

    spec = models.ForeignKey(Spec, on_delete=models.CASCADE, related_name="prices")
    currency = models.CharField(max_length=3)
    hourly = models.DecimalField(max_digits=12, decimal_places=4)
    #: The per-hour price while ``stopped``: the volumes and addresses are kept, the brokers are not running.
    stopped_hourly = models.DecimalField(max_digits=12, decimal_places=4)
    annual = models.DecimalField(max_digits=14, decimal_places=2)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["spec", "currency"], name="one_price_per_spec_currency")]

    def __str__(self) -> str:
        return f"{self.spec_id} {self.currency} {self.hourly}/h"


class DeploymentStatus(models.TextChoices):
    PENDING = "pending"
    PROVISIONING = "provisioning"
    RUNNING = "running"
    SCALING = "scaling"
    STOPPING = "stopping"
    STOPPED = "stopped"
    STARTING = "starting"
    DELETING = "deleting"
    DELETED = "deleted"
    FAILED = "failed"


MANAGEMENT_API_KEY = "mqcloud"


def new_management_api_secret() -> str:
    return secrets.token_urlsafe(32)


class Deployment(models.Model):
    """An MQTT broker cluster (EMQX) in one region, sized by a spec, living in its own Kubernetes namespace.

    ``status`` only changes through ``deployments.lifecycle.transition`` so that every change is a
    :class:`DeploymentEvent` (billing meters and the audit log read those).
    """

    id = PrefixedIdField(prefix="dep")
    organization = models.ForeignKey("projects.Organization", on_delete=models.PROTECT, related_name="deployments")
    project = models.ForeignKey("projects.Project", on_delete=models.PROTECT, related_name="deployments")
    name = models.CharField(max_length=40)
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+")
    spec = models.ForeignKey(Spec, on_delete=models.PROTECT, related_name="+", help_text="the size now running")
    # While scaling: the size being rolled out; equal to ``spec`` otherwise.
    target_spec = models.ForeignKey(Spec, on_delete=models.PROTECT, related_name="+")
    tier = models.CharField(max_length=16, choices=Tier.choices)
    status = models.CharField(max_length=16, choices=DeploymentStatus.choices, default=DeploymentStatus.PENDING)
    status_reason = models.CharField(max_length=500, blank=True)
    # The operation that failed, so "retry" knows what to re-drive.
    failed_operation = models.CharField(max_length=16, blank=True)
    deletion_protection = models.BooleanField(default=False)
    endpoints = models.JSONField(default=dict, blank=True)
    #: The EMQX version (``BrokerVersion``) the nodes run; an upgrade changes it once every node runs the new one.
    broker_version = models.CharField(max_length=32, default=default_broker_version)
    # Where a multi-step operation (a single node's surge resize) is, so a restarted worker resumes it.
    rollout_step = models.PositiveSmallIntegerField(default=0)
    # Bootstrap secrets of the broker cluster: stable for its life, encrypted at rest.
    node_cookie = EncryptedTextField()
    dashboard_password = EncryptedTextField()
    #: The secret of the broker's bootstrap management API key ``MANAGEMENT_API_KEY`` (EMQX
    #: ``api_key.bootstrap_file``): what the control plane pushes users and rules with.
    management_api_secret = EncryptedTextField(default=new_management_api_secret)
    # Bumped whenever the desired Kubernetes state changes; the reconciler compares it with what it applied.
    desired_generation = models.PositiveIntegerField(default=1)
    applied_generation = models.PositiveIntegerField(default=0)
    #: ``kind/name`` → the applied-hash (``k8s.drift``) of each object as last applied: a new generation
    #: applies only the objects whose rendering changed (a new certificate: its Secret and the StatefulSet).
    applied_objects = models.JSONField(default=dict, blank=True)
    status_changed_at = models.DateTimeField(default=timezone.now)
    last_reconciled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # Names are unique per project among deployments that still exist.
            models.UniqueConstraint(fields=["project", "name"], condition=~models.Q(status="deleted"),
                                    name="deployment_name_unique_per_project"),
        ]
        indexes = [
            models.Index(fields=["organization", "-created_at"]),
            models.Index(fields=["status", "status_changed_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"

    @property
    def namespace(self) -> str:
        """The Kubernetes namespace: DNS-safe, stable, and free of the customer's chosen name."""
        return f"mq-{self.id.removeprefix('dep_')}"


class DeploymentEvent(models.Model):
    """One lifecycle transition. Append-only; ``spec`` is the size in force from this moment."""

    id = PrefixedIdField(prefix="evt")
    organization = models.ForeignKey("projects.Organization", on_delete=models.PROTECT, related_name="+")
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(max_length=16, choices=DeploymentStatus.choices, blank=True)
    to_status = models.CharField(max_length=16, choices=DeploymentStatus.choices)
    spec = models.ForeignKey(Spec, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=500, blank=True)
    actor_label = models.CharField(max_length=254, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["deployment", "created_at"])]

    def __str__(self) -> str:
        return f"{self.deployment_id}: {self.from_status or '∅'} → {self.to_status}"


class HttpAuthMethod(models.TextChoices):
    GET = "get", "GET"
    POST = "post", "POST"


class HttpAuthConfig(models.Model):
    """A deployment's custom HTTP authentication (and optional authorization/ACL) requests; one per deployment.

    Each request is ``<kind>_method/url/headers/params/timeout_ms`` with kind ``authn`` or ``authz``; the
    authorization request is configured only while ``authz_url`` is set. Header values are secrets: the
    ``*_headers`` columns hold a JSON object ``{name: value}`` encrypted at rest and never leave through the
    API. ``generation`` is bumped on every change; provisioning records in ``applied_generation`` the one
    every broker node runs (once the rolling restart that loads it, or the operation that carried it, has
    finished), so the console, the API and the ops site tell the same "live" (``selectors.http_auth_rollout``).
    """

    id = PrefixedIdField(prefix="hau")
    organization = models.ForeignKey("projects.Organization", on_delete=models.PROTECT, related_name="+")
    deployment = models.OneToOneField(Deployment, on_delete=models.CASCADE, related_name="http_auth")
    enabled = models.BooleanField(default=True)

    authn_method = models.CharField(max_length=4, choices=HttpAuthMethod.choices, default=HttpAuthMethod.POST)
    authn_url = models.URLField(max_length=2048)
    authn_headers = EncryptedTextField(default="{}")
    authn_params = models.JSONField(default=dict, blank=True)
    authn_timeout_ms = models.PositiveIntegerField(default=5000)

    authz_method = models.CharField(max_length=4, choices=HttpAuthMethod.choices, default=HttpAuthMethod.POST)
    authz_url = models.URLField(max_length=2048, blank=True)
    authz_headers = EncryptedTextField(default="{}")
    authz_params = models.JSONField(default=dict, blank=True)
    authz_timeout_ms = models.PositiveIntegerField(default=5000)

    generation = models.PositiveIntegerField(default=1)
    applied_generation = models.PositiveIntegerField(default=0)
    #: Last "test" result per kind ("authentication"/"authorization"): decision, status_code, latency_ms,
    #: error, tested_at. Kept so a slow or failing auth service shows before it slows client connects.
    last_tests = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "HTTP auth config"

    def __str__(self) -> str:
        return f"HTTP auth of {self.deployment_id}"


class PeeringStatus(models.TextChoices):
    PENDING = "pending"
    PENDING_ACCEPTANCE = "pending_acceptance"
    INITIATED = "initiated"
    ACTIVE = "active"
    FAILED = "failed"
    EXPIRED = "expired"
    DELETING = "deleting"
    DELETED = "deleted"


class Peering(models.Model):
    """A private network link between a deployment's platform network and the customer's AWS VPC or Azure VNet.

    ``status`` only changes through ``deployments.peering.lifecycle.transition`` (every change is a
    :class:`PeeringEvent`). AWS fields (``account_id, vpc_id, peer_region``) or Azure fields (``tenant_id,
    subscription_id, resource_group, vnet_name``) are filled according to ``provider``. ``cloud_id`` is the
    VPC peering connection id (``pcx-…``) or the resource id of our side of the VNet peering.
    """

    id = PrefixedIdField(prefix="pcx")
    organization = models.ForeignKey("projects.Organization", on_delete=models.PROTECT, related_name="+")
    deployment = models.ForeignKey(Deployment, on_delete=models.PROTECT, related_name="peerings")
    provider = models.CharField(max_length=8, choices=Provider.choices)
    cidr = models.CharField(max_length=18, help_text="the customer's network, e.g. 10.20.0.0/16")
    # AWS
    account_id = models.CharField(max_length=12, blank=True)
    vpc_id = models.CharField(max_length=21, blank=True)
    peer_region = models.CharField(max_length=32, blank=True)
    # Azure
    tenant_id = models.CharField(max_length=36, blank=True)
    subscription_id = models.CharField(max_length=36, blank=True)
    resource_group = models.CharField(max_length=90, blank=True)
    vnet_name = models.CharField(max_length=64, blank=True)

    status = models.CharField(max_length=24, choices=PeeringStatus.choices, default=PeeringStatus.PENDING)
    status_reason = models.CharField(max_length=500, blank=True)
    cloud_id = models.CharField(max_length=400, blank=True)
    #: The state the cloud reported last (``pending-acceptance``, ``Initiated``…), for operators.
    cloud_state = models.CharField(max_length=40, blank=True)
    #: Set once routes and security-group rules for ``cidr`` are in place on the platform side (AWS).
    network_configured_at = models.DateTimeField(null=True, blank=True)
    requested_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    status_changed_at = models.DateTimeField(default=timezone.now)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["organization", "-created_at"]),
            models.Index(fields=["status", "status_changed_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.provider} peering {self.cidr} ({self.id})"


class PeeringEvent(models.Model):
    """One peering transition. Append-only."""

    id = PrefixedIdField(prefix="evt")
    organization = models.ForeignKey("projects.Organization", on_delete=models.PROTECT, related_name="+")
    peering = models.ForeignKey(Peering, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(max_length=24, choices=PeeringStatus.choices, blank=True)
    to_status = models.CharField(max_length=24, choices=PeeringStatus.choices)
    reason = models.CharField(max_length=500, blank=True)
    actor_label = models.CharField(max_length=254, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["peering", "created_at"])]

    def __str__(self) -> str:
        return f"{self.peering_id}: {self.from_status or '∅'} → {self.to_status}"


class MqttAccess(models.Model):
    """Who may connect to a deployment and what they may do: the ACL, and the generation counter of its
    built-in database users and rules together. One per deployment, created on first change.

    The control plane is the source of truth; the broker holds a copy pushed through its management API.
    ``generation`` is bumped by every change to the users or the rules; the delivery worker records in
    ``applied_generation`` the one the broker holds, so the API can tell when the latest change is live.
    """

    deployment = models.OneToOneField(Deployment, on_delete=models.CASCADE, primary_key=True,
                                      related_name="mqtt_access")
    #: Ordered rules as the API shows them: ``[{permission, who, action, topics}]``.
    acl_rules = models.JSONField(default=list, blank=True)
    acl_no_match = models.CharField(max_length=5, default="deny")
    generation = models.PositiveIntegerField(default=0)
    applied_generation = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"access of {self.deployment_id} (generation {self.generation})"


class MqttUser(models.Model):
    """A device credential in a deployment's built-in authentication database: a salted hash, never the
    password (``deployments/mqtt_access/hashing.py`` says which schemes and why)."""

    id = PrefixedIdField(prefix="mqu")
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="mqtt_users")
    username = models.CharField(max_length=128)
    #: NFKC + casefold of ``username``: two usernames with the same key are the same user.
    username_key = models.CharField(max_length=1024)  # NFKC can expand a character up to 18
    algorithm = models.CharField(max_length=16)
    password_hash = models.CharField(max_length=128)
    salt = models.CharField(max_length=64)
    is_superuser = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["deployment", "username_key"],
                                               name="one_mqtt_user_per_username")]
        indexes = [models.Index(fields=["deployment", "username"])]

    def __str__(self) -> str:
        return self.username


# --- TLS ----------------------------------------------------------------------------------------------
class CertificateAuthorityStatus(models.TextChoices):
    ACTIVE = "active"  # signs new server certificates
    RETIRING = "retiring"  # replaced; still trusted (in ca.pem) while certificates it signed are in use
    RETIRED = "retired"  # nothing it signed is in use any more; kept as a record


class CertificateAuthority(models.Model):
    """A region's private CA: it signs the server certificates of the deployments there (``mqtts``, ``wss``).

    One active CA per region. Near its expiry a new one becomes active and this one ``retiring``: both are
    served in ``ca.pem`` until every certificate it signed has been re-issued. The private key is encrypted at
    rest and never leaves the control plane.
    """

    id = PrefixedIdField(prefix="cau")
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=16, choices=CertificateAuthorityStatus.choices,
                              default=CertificateAuthorityStatus.ACTIVE)
    subject = models.CharField(max_length=200)
    certificate_pem = models.TextField()
    private_key_pem = EncryptedTextField()
    fingerprint_sha256 = models.CharField(max_length=64)
    not_before = models.DateTimeField()
    not_after = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "certificate authorities"
        constraints = [
            models.UniqueConstraint(fields=["region"], condition=models.Q(status="active"),
                                    name="one_active_ca_per_region"),
        ]

    def __str__(self) -> str:
        return f"{self.subject} ({self.id}, {self.status})"


class ServerCertificate(models.Model):
    """The TLS server certificate a deployment's brokers serve, for the host of its endpoints; one per
    deployment, replaced in place when renewed or when the host changes. The private key is encrypted at rest
    and reaches the cluster only in the deployment's ``emqx-tls`` Secret."""

    id = PrefixedIdField(prefix="crt")
    organization = models.ForeignKey("projects.Organization", on_delete=models.PROTECT, related_name="+")
    deployment = models.OneToOneField(Deployment, on_delete=models.CASCADE, related_name="server_certificate")
    authority = models.ForeignKey(CertificateAuthority, on_delete=models.PROTECT, related_name="certificates")
    host = models.CharField(max_length=253, help_text="the endpoints' host: an IP address or a DNS name")
    sans = models.JSONField(default=list, help_text='subject alternative names, e.g. ["IP:127.77.0.5"]')
    serial_number = models.CharField(max_length=40)
    certificate_pem = models.TextField()
    private_key_pem = EncryptedTextField()
    fingerprint_sha256 = models.CharField(max_length=64)
    not_before = models.DateTimeField()
    not_after = models.DateTimeField(db_index=True)
    issued_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"certificate of {self.deployment_id} for {self.host}"


# The maintenance models live with their package; imported here so the app registry loads them with these.
from deployments.maintenance.models import (  # noqa: E402, F401
    MaintenanceDeferral,
    MaintenanceExclusion,
    MaintenanceWindow,
    PlannedMaintenance,
    PlannedMaintenanceKind,
    PlannedMaintenanceStatus,
    Weekday,
)

# Operations live in their own module too; imported here so Django finds them.
from deployments.operations.models import Operation, OperationEvent, OperationStatus, OperationType  # noqa: E402,F401
