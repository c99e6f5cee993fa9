from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from controlplane.api.serializers import InputSerializer, OutputSerializer, format_datetime
from deployments import selectors
from deployments.http_auth import KINDS, request_spec
from deployments.models import Deployment, DeploymentEvent, HttpAuthConfig, Region, Spec


class RegionOut(serializers.ModelSerializer):
    tiers = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = Region
        fields = ["id", "provider", "code", "name", "tiers"]
        read_only_fields = fields


class SpecPricesOut(serializers.Serializer):
    hourly = serializers.DecimalField(max_digits=12, decimal_places=4)
    stopped_hourly = serializers.DecimalField(max_digits=12, decimal_places=4,
                                              help_text="Per hour while stopped (storage and addresses kept).")
    annual = serializers.DecimalField(max_digits=14, decimal_places=2)
    currency = serializers.CharField()
    annual_saving_pct = serializers.DecimalField(max_digits=5, decimal_places=1,
                                                 help_text="Saving of annual against 8,760 hours at the hourly price.")


class SpecOut(serializers.ModelSerializer):
    prices = serializers.SerializerMethodField()

    class Meta:
        model = Spec
        fields = ["id", "tier", "name", "max_connections", "max_messages_per_second", "replicas", "cpu_millicores",
                  "memory_mib", "prices"]
        read_only_fields = fields

    @extend_schema_field(SpecPricesOut(allow_null=True))
    def get_prices(self, obj: Spec) -> dict | None:
        prices = selectors.spec_prices(spec=obj, currency=self.context["currency"])
        return None if prices is None else SpecPricesOut(prices).data


# --- deployments ------------------------------------------------------------------------------------


class EndpointsOut(serializers.Serializer):
    mqtt = serializers.CharField(required=False)
    mqtts = serializers.CharField(required=False)
    ws = serializers.CharField(required=False)
    wss = serializers.CharField(required=False)


class DeploymentTlsOut(serializers.Serializer):
    fingerprint_sha256 = serializers.CharField(help_text="SHA-256 of the server certificate (DER), lower-case hex.")
    not_after = serializers.DateTimeField(help_text="When the server certificate expires (it is renewed before).")
    ca_pem_url = serializers.CharField(help_text="Where the CA certificates to verify it against are.")


def deployment_tls_out(deployment: Deployment) -> dict | None:
    """As :class:`DeploymentTlsOut` renders it (both columns are non-null)."""
    try:
        certificate = deployment.server_certificate
    except ObjectDoesNotExist:
        return None
    return _tls(deployment.id, certificate.fingerprint_sha256, certificate.not_after)


def _tls(deployment_id: str, fingerprint: str, not_after) -> dict:
    return {"fingerprint_sha256": str(fingerprint), "not_after": format_datetime(not_after),
            "ca_pem_url": f"/api/v1/deployments/{deployment_id}/ca.pem"}


def _tls_row(row: dict) -> dict | None:
    fingerprint = row["server_certificate__fingerprint_sha256"]
    return None if fingerprint is None else _tls(row["id"], fingerprint, row["server_certificate__not_after"])


_ENDPOINT_NAMES = tuple(EndpointsOut._declared_fields)


def endpoints_out(endpoints: dict) -> dict[str, str | None]:
    """As :class:`EndpointsOut` renders the JSON column: its keys in declared order, a missing one left out."""
    return {name: None if endpoints[name] is None else str(endpoints[name])
            for name in _ENDPOINT_NAMES if name in endpoints}


class DeploymentOut(OutputSerializer):
    project = serializers.CharField(source="project_id", read_only=True)
    region = serializers.CharField(source="region_id", read_only=True)
    spec = serializers.CharField(source="spec_id", read_only=True)
    target_spec = serializers.CharField(source="target_spec_id", read_only=True,
                                        help_text="While scaling, the spec being rolled out.")
    endpoints = EndpointsOut(read_only=True)
    tls = serializers.SerializerMethodField(
        help_text="The TLS server certificate `mqtts` and `wss` serve; null until the endpoints have an address.")

    class Meta:
        model = Deployment
        fields = ["id", "project", "name", "tier", "spec", "target_spec", "broker_version", "region", "status",
                  "status_reason", "endpoints", "tls", "deletion_protection", "created_at", "updated_at",
                  "status_changed_at"]
        read_only_fields = fields

    fast_fields = {"endpoints": lambda deployment: endpoints_out(deployment.endpoints)}
    row_fields = {
        "endpoints": (("endpoints",), lambda row: endpoints_out(row["endpoints"])),
        "tls": (("id", "server_certificate__fingerprint_sha256", "server_certificate__not_after"), _tls_row),
    }

    @extend_schema_field(DeploymentTlsOut(allow_null=True))
    def get_tls(self, obj: Deployment) -> dict | None:
        return deployment_tls_out(obj)


class DeploymentEventOut(OutputSerializer):
    spec = serializers.CharField(source="spec_id", read_only=True)

    class Meta:
        model = DeploymentEvent
        fields = ["id", "from_status", "to_status", "spec", "reason", "actor_label", "details", "created_at"]
        read_only_fields = fields


class DeploymentIn(InputSerializer):
    project = serializers.RegexField(r"^prj_[a-z0-9]{1,28}$", max_length=32)
    name = serializers.CharField(max_length=40)
    region = serializers.CharField(max_length=64)
    spec = serializers.CharField(max_length=64)


class DeploymentPatchIn(InputSerializer):
    name = serializers.CharField(max_length=40, required=False)
    deletion_protection = serializers.BooleanField(required=False)


class DeploymentScaleIn(InputSerializer):
    spec = serializers.CharField(max_length=64)


class EmptyIn(InputSerializer):
    pass



# --- custom HTTP authentication ---------------------------------------------------------------------
class HttpAuthRequestIn(InputSerializer):
    method = serializers.CharField(max_length=8, help_text="GET (params as query string) or POST (params as a "
                                                            "JSON body).")
    url = serializers.CharField(max_length=2048, help_text="http:// or https://; basic deployments: a public "
                                                           "address only.")
    headers = serializers.DictField(child=serializers.CharField(max_length=4096, allow_blank=True,
                                                                trim_whitespace=False),
                                    required=False, default=dict,
                                    help_text="Header name → value. Write-only: responses list the names only. "
                                              "A PUT replaces every header; one left out is removed.")
    params = serializers.DictField(child=serializers.CharField(max_length=1024, allow_blank=True,
                                                               trim_whitespace=False),
                                   required=False, default=dict,
                                   help_text="Param name → template with placeholders such as ${username}.")
    timeout_ms = serializers.IntegerField(min_value=100, max_value=10000, default=5000)

    def to_internal_value(self, data):
        # Nested serializers have no initial_data of their own: refuse unknown fields here.
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)

    def validate_method(self, value: str) -> str:
        if value.lower() not in ("get", "post"):
            raise serializers.ValidationError("Use GET or POST.")
        return value.lower()


class HttpAuthIn(InputSerializer):
    enabled = serializers.BooleanField(default=True)
    authentication = HttpAuthRequestIn()
    authorization = HttpAuthRequestIn(required=False, allow_null=True, default=None,
                                      help_text="The ACL request; null or absent: no HTTP authorization.")


class HttpAuthRequestOut(serializers.Serializer):
    method = serializers.CharField()
    url = serializers.CharField()
    headers = serializers.ListField(child=serializers.CharField(), help_text="Header names; values are write-only.")
    params = serializers.DictField(child=serializers.CharField())
    timeout_ms = serializers.IntegerField()


class HttpAuthTestResultOut(serializers.Serializer):
    kind = serializers.CharField()
    decision = serializers.ChoiceField(choices=["allow", "deny", "ignore"])
    status_code = serializers.IntegerField(allow_null=True)
    latency_ms = serializers.FloatField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    is_superuser = serializers.BooleanField(allow_null=True)
    tested_at = serializers.DateTimeField()
    slow = serializers.BooleanField(help_text="Latency above one second: every client connect waits that long.")


class HttpAuthLastTestsOut(serializers.Serializer):
    authentication = HttpAuthTestResultOut(allow_null=True)
    authorization = HttpAuthTestResultOut(allow_null=True)


class HttpAuthOut(serializers.Serializer):
    deployment = serializers.CharField()
    enabled = serializers.BooleanField()
    authentication = HttpAuthRequestOut()
    authorization = HttpAuthRequestOut(allow_null=True)
    generation = serializers.IntegerField()
    applied = serializers.BooleanField(help_text="Whether every broker node runs this configuration: true once the "
                                                 "rolling restart that loads it (an event of the deployment's "
                                                 "lifecycle) has finished, or the operation that carried it.")
    last_tests = HttpAuthLastTestsOut()
    updated_at = serializers.DateTimeField()


class HttpAuthTestIn(InputSerializer):
    kind = serializers.ChoiceField(choices=["authentication", "authorization"], default="authentication")
    clientid = serializers.CharField(max_length=256, allow_blank=True, default="", trim_whitespace=False)
    username = serializers.CharField(max_length=256, allow_blank=True, default="", trim_whitespace=False)
    password = serializers.CharField(max_length=1024, allow_blank=True, default="", trim_whitespace=False)
    peerhost = serializers.CharField(max_length=64, allow_blank=True, default="127.0.0.1")
    cert_subject = serializers.CharField(max_length=1024, allow_blank=True, default="", trim_whitespace=False)
    topic = serializers.CharField(max_length=1024, allow_blank=True, default="", trim_whitespace=False)
    action = serializers.ChoiceField(choices=["publish", "subscribe"], default="publish")


class HttpAuthTestOut(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["allow", "deny", "ignore"])
    status_code = serializers.IntegerField(allow_null=True)
    latency_ms = serializers.FloatField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    is_superuser = serializers.BooleanField(allow_null=True)
    kind = serializers.CharField()


def _http_auth_live(config: HttpAuthConfig) -> bool:
    rollout = selectors.http_auth_rollout(deployment=config.deployment)
    return rollout is not None and rollout.live


def http_auth_out(config: HttpAuthConfig) -> dict:
    def request_out(kind: str) -> dict | None:
        spec = request_spec(config, kind)
        if spec is None:
            return None
        return {"method": spec.method.upper(), "url": spec.url, "headers": sorted(spec.headers),
                "params": spec.params, "timeout_ms": spec.timeout_ms}

    return HttpAuthOut({
        "deployment": config.deployment_id,
        "enabled": config.enabled,
        "authentication": request_out(KINDS[0]),
        "authorization": request_out(KINDS[1]),
        "generation": config.generation,
        "applied": _http_auth_live(config),
        "last_tests": {kind: config.last_tests.get(kind) for kind in KINDS},
        "updated_at": config.updated_at,
    }).data
