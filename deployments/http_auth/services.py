"""Services of a deployment's custom HTTP authentication and authorization: the audited writes (which
re-drive the deployment) and the "test" call.

The test call builds the request and reads the answer by EMQX's rules (``k8s.emqx_http``, which the simulated
broker uses too), so what the test sends and predicts is what the broker sends and does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from controlplane import errors
from controlplane.db import lock_row
from controlplane.errors import field_invalid
from controlplane.outbound import OutboundBlocked, OutboundError, check_url, send
from deployments.http_auth.validation import (
    AUTHENTICATION,
    AUTHORIZATION,
    KINDS,
    PLACEHOLDERS,
    PREFIX,
    HttpRequestSpec,
    check_request_url,
    check_shape,
    request_spec,
)
from deployments.lifecycle import schedule_apply
from deployments.models import Deployment, HttpAuthConfig, HttpAuthMethod, Tier
from deployments.models import DeploymentStatus as S
from deployments.selectors import active_peering_networks
from k8s.emqx_http import BuiltRequest, decide
from k8s.emqx_http import build_request as emqx_build_request
from projects.audit import audit_record
from projects.roles import Perm
from projects.tenancy import Principal

SLOW_MS = 1000  # a test slower than this is flagged: every client connect would wait that long


# --- building the request exactly as the broker would (k8s.emqx_http holds EMQX's rules) ---------------
def build_request(spec: HttpRequestSpec, values: dict[str, str]) -> BuiltRequest:
    return emqx_build_request(spec.method, spec.url, spec.headers, spec.params, values)


# --- services -------------------------------------------------------------------------------------
def _locked_deployment(principal: Principal, deployment: Deployment) -> Deployment:
    locked = lock_row(Deployment, deployment.pk, organization=principal.organization)
    if locked.status in (S.DELETING, S.DELETED):
        raise errors.Conflict(f"The deployment is {locked.status}.")
    return locked


def _summary(kind: str, spec: HttpRequestSpec | None) -> dict[str, Any] | None:
    """What the audit log keeps of a request: never a header value."""
    if spec is None:
        return None
    return {"method": spec.method, "url": spec.url, "headers": sorted(spec.headers), "params": spec.params,
            "timeout_ms": spec.timeout_ms}


def http_auth_put(*, principal: Principal, deployment: Deployment, enabled: bool,
                  authentication: HttpRequestSpec, authorization: HttpRequestSpec | None) -> HttpAuthConfig:
    """Replaces the deployment's HTTP auth configuration (creating it the first time) and re-drives it."""
    principal.require(Perm.DEPLOYMENTS_WRITE)
    requests = {AUTHENTICATION: authentication, AUTHORIZATION: authorization}
    for kind, spec in requests.items():
        if spec is not None:
            check_shape(kind, spec)
    # DNS is looked up outside the transaction: no row lock is held while a resolver answers.
    for kind, spec in requests.items():
        if spec is not None:
            check_request_url(kind, spec.url, deployment)
    with transaction.atomic():
        locked = _locked_deployment(principal, deployment)
        config = HttpAuthConfig.objects.select_for_update().filter(deployment=locked).first()
        created = config is None
        if config is None:
            config = HttpAuthConfig(organization=principal.organization, deployment=locked, generation=0)
        before = {kind: _summary(kind, request_spec(config, kind)) for kind in KINDS} if not created else {}
        before_enabled = None if created else config.enabled
        config.enabled = enabled
        for kind, spec in requests.items():
            prefix = PREFIX[kind]
            setattr(config, f"{prefix}_method", spec.method if spec else HttpAuthMethod.POST)
            setattr(config, f"{prefix}_url", spec.url if spec else "")
            setattr(config, f"{prefix}_headers", json.dumps(spec.headers if spec else {}, sort_keys=True))
            setattr(config, f"{prefix}_params", spec.params if spec else {})
            setattr(config, f"{prefix}_timeout_ms", spec.timeout_ms if spec else 5000)
        config.generation += 1
        config.save()
        locked.desired_generation += 1
        locked.save(update_fields=["desired_generation", "updated_at"])
        changes: dict[str, Any] = {"enabled": [before_enabled, enabled] if before_enabled != enabled else enabled}
        for kind, spec in requests.items():
            after = _summary(kind, spec)
            if created or before.get(kind) != after:
                changes[kind] = after
        audit_record(principal=principal, action="deployment.http_auth.update", target=locked, changes=changes)
        schedule_apply(locked)
    return config


def http_auth_delete(*, principal: Principal, deployment: Deployment) -> None:
    """Removes the configuration: the broker goes back to the built-in database alone (and the ACL)."""
    principal.require(Perm.DEPLOYMENTS_WRITE)
    with transaction.atomic():
        locked = _locked_deployment(principal, deployment)
        deleted, _ = HttpAuthConfig.objects.filter(deployment=locked).delete()
        if not deleted:
            raise errors.NotFound(f"The deployment {locked.id} has no HTTP authentication configured.")
        locked.desired_generation += 1
        locked.save(update_fields=["desired_generation", "updated_at"])
        audit_record(principal=principal, action="deployment.http_auth.delete", target=locked)
        schedule_apply(locked)


@dataclass(frozen=True)
class TestResult:
    kind: str
    decision: str
    status_code: int | None
    latency_ms: float | None
    error: str
    is_superuser: bool | None
    tested_at: str

    @property
    def slow(self) -> bool:
        return self.latency_ms is not None and self.latency_ms > SLOW_MS

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "decision": self.decision, "status_code": self.status_code,
                "latency_ms": self.latency_ms, "error": self.error, "is_superuser": self.is_superuser,
                "tested_at": self.tested_at, "slow": self.slow}


PEERED_TEST_REFUSED = (
    "This URL is a private address in one of the deployment's VPC peerings. The broker reaches it from inside "
    "the deployment's network, but the control plane does not send requests into your network, so it cannot "
    "test it from here. Test it with a real MQTT client connecting to the deployment (a refused or accepted "
    "connection shows what the service decided), or call the service from a machine inside your VPC.")


def _inside_peering(url: str, deployment: Deployment) -> bool:
    """Whether ``url`` (refused as private) is one the broker may reach through an active peering."""
    networks = active_peering_networks(deployment) if deployment.tier != Tier.BASIC else []
    if not networks:
        return False
    try:
        check_url(url, allow_networks=networks)
    except OutboundError:
        return False
    return True


def http_auth_test(*, principal: Principal, deployment: Deployment, kind: str = AUTHENTICATION,
                   sample: dict[str, str]) -> TestResult:
    """Sends one request built from ``sample`` as the broker would, through the guarded client, and keeps
    the result on the configuration.

    Only to public addresses: a URL inside one of the deployment's peerings (saved, and used by the broker)
    is a 409 with the reason, so nobody can use the control plane to probe the network it runs in."""
    principal.require(Perm.DEPLOYMENTS_WRITE)
    config = HttpAuthConfig.objects.filter(deployment=deployment, organization=principal.organization).first()
    if config is None:
        raise errors.NotFound(f"The deployment {deployment.id} has no HTTP authentication configured.")
    spec = request_spec(config, kind)
    if spec is None:
        raise field_invalid("kind", f"The deployment has no {kind} request configured.")
    values = {name: sample.get(name, "") for name in PLACEHOLDERS[kind]}
    built = build_request(spec, values)
    timeout = spec.timeout_ms / 1000
    status_code: int | None = None
    latency_ms: float | None = None
    superuser: bool | None = None
    error = ""
    started = timezone.now()
    try:
        # No allow_networks: the control plane never sends into a customer's peered network (the broker may;
        # its egress policy lets it). A private URL is refused here before any connection.
        response = send(built.method, built.url, headers=built.headers, body=built.body,
                        connect_timeout=min(3.0, timeout), timeout=timeout, max_bytes=64_000, max_redirects=0)
    except OutboundBlocked as exc:
        if _inside_peering(built.url, deployment):
            raise errors.Conflict(PEERED_TEST_REFUSED) from exc
        decision, error = "ignore", f"{exc.kind}: {exc}"
    except OutboundError as exc:
        decision = "ignore"
        error = f"{exc.kind}: {exc}"
        if exc.kind == "timeout":
            latency_ms = float(spec.timeout_ms)
    else:
        status_code = response.status
        latency_ms = round(response.elapsed_ms, 1)
        decision, superuser = decide(response.status, response.headers, response.body)
        if not 200 <= response.status < 500:
            error = f"The service answered {response.status}; the broker passes to the next authenticator."
    result = TestResult(kind=kind, decision=decision, status_code=status_code, latency_ms=latency_ms,
                        error=error, is_superuser=superuser, tested_at=started.isoformat())
    with transaction.atomic():
        locked = HttpAuthConfig.objects.select_for_update().filter(pk=config.pk).first()
        if locked is not None:
            locked.last_tests = {**locked.last_tests, kind: result.as_dict()}
            locked.save(update_fields=["last_tests", "updated_at"])
        audit_record(principal=principal, action="deployment.http_auth.test", target=deployment,
                     changes={"kind": kind, "decision": decision, "status_code": status_code})
    return result
