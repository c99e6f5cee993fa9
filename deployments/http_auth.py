"""Custom HTTP authentication and authorization (ACL) of a deployment: rules, services, rendering.

The same code builds the request for the "test" call and renders the broker's configuration, so what the
test sends is what EMQX sends (EMQX 5 ``backend = http`` authenticator and ``type = http`` authorization
source):

- ``GET``: the params, placeholders substituted, become the URL's query string (URL-encoded);
  ``POST``: they become a JSON object body (``content-type: application/json``).
- The decision: a 2xx response whose JSON body carries ``result`` of ``allow``/``deny``/``ignore`` decides
  (with ``is_superuser`` when present); otherwise 2xx allows, 4xx denies, and anything else (5xx, a
  timeout, a connection error) is ``ignore``: the broker moves on to the next authenticator (or, for ACL,
  to ``no_match``).

API semantics (documented in the API schema too):

- ``PUT`` replaces the whole configuration, header values included: a header left out is gone.
- Header values are write-only: responses list header *names* only (``"headers": ["Authorization"]``),
  so a GET body cannot be sent back by mistake with masked values stored as real ones.
- Placeholders go in ``params`` values only; the URL must be a fixed address so it can be checked.

Broker configuration: header values are not written into the ConfigMap; they go into the bootstrap
Secret and reach emqx.conf as optional environment substitutions (``${?MQCLOUD_HTTP_AUTHN_HEADER_0}``).
ACL: ``no_match = deny`` (a customer who configured an ACL service wants unknown access refused, also
while the service is down) and ``deny_action = ignore`` (a refused publish is dropped, the client stays).
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from controlplane import errors
from controlplane.outbound import OutboundBlocked, OutboundError, check_url, send
from deployments.lifecycle import schedule_apply
from deployments.models import Deployment, HttpAuthConfig, HttpAuthMethod, Tier
from deployments.models import DeploymentStatus as S
from deployments.selectors import active_peering_networks
from projects.roles import Perm
from projects.services import audit_record
from projects.tenancy import Principal

AUTHENTICATION = "authentication"
AUTHORIZATION = "authorization"
KINDS = (AUTHENTICATION, AUTHORIZATION)
_PREFIX = {AUTHENTICATION: "authn", AUTHORIZATION: "authz"}

AUTHN_PLACEHOLDERS = ("clientid", "username", "password", "peerhost", "cert_subject")
AUTHZ_PLACEHOLDERS = (*AUTHN_PLACEHOLDERS, "topic", "action")
PLACEHOLDERS = {AUTHENTICATION: AUTHN_PLACEHOLDERS, AUTHORIZATION: AUTHZ_PLACEHOLDERS}
PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")

TIMEOUT_MS_MIN, TIMEOUT_MS_MAX = 100, 10_000
MAX_HEADERS, MAX_PARAMS = 20, 32
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")
PARAM_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
# Set by the broker itself; a customer value would break the request or smuggle another one.
RESERVED_HEADERS = frozenset({"host", "content-type", "content-length", "transfer-encoding", "connection",
                              "keep-alive", "upgrade", "te", "trailer", "expect"})
SLOW_MS = 1000  # a test slower than this is flagged: every client connect would wait that long

DECISIONS = ("allow", "deny", "ignore")


@dataclass(frozen=True)
class HttpRequestSpec:
    """One configured request (authentication or authorization), header values in clear."""

    method: str  # "get" or "post"
    url: str
    headers: dict[str, str]
    params: dict[str, str]
    timeout_ms: int


@dataclass(frozen=True)
class BuiltRequest:
    method: str  # "GET" or "POST"
    url: str
    headers: dict[str, str]
    body: bytes | None


# --- reading the model ------------------------------------------------------------------------------
def request_spec(config: HttpAuthConfig, kind: str) -> HttpRequestSpec | None:
    prefix = _PREFIX[kind]
    url = getattr(config, f"{prefix}_url")
    if not url:
        return None
    return HttpRequestSpec(
        method=getattr(config, f"{prefix}_method"),
        url=url,
        headers=json.loads(getattr(config, f"{prefix}_headers") or "{}"),
        params=dict(getattr(config, f"{prefix}_params") or {}),
        timeout_ms=getattr(config, f"{prefix}_timeout_ms"),
    )


# --- validation -------------------------------------------------------------------------------------
def _bad(field: str, message: str) -> errors.ValidationFailed:
    return errors.ValidationFailed(message, errors={field: [message]})


def unknown_placeholders(text: str, kind: str) -> list[str]:
    return [name for name in PLACEHOLDER.findall(text) if name not in PLACEHOLDERS[kind]]


def _check_shape(kind: str, spec: HttpRequestSpec) -> None:
    if spec.method not in HttpAuthMethod.values:
        raise _bad(f"{kind}.method", "Use GET or POST.")
    if not TIMEOUT_MS_MIN <= spec.timeout_ms <= TIMEOUT_MS_MAX:
        raise _bad(f"{kind}.timeout_ms", f"Use {TIMEOUT_MS_MIN} to {TIMEOUT_MS_MAX} milliseconds.")
    if len(spec.headers) > MAX_HEADERS:
        raise _bad(f"{kind}.headers", f"At most {MAX_HEADERS} headers.")
    seen: set[str] = set()
    for name, value in spec.headers.items():
        if not HEADER_NAME.match(name):
            raise _bad(f"{kind}.headers", f"{name!r} is not a valid header name.")
        if name.lower() in RESERVED_HEADERS:
            raise _bad(f"{kind}.headers", f"The broker sets the {name} header itself.")
        if name.lower() in seen:
            raise _bad(f"{kind}.headers", f"The header {name} is given twice.")
        seen.add(name.lower())
        if any(ch in value for ch in "\r\n\0"):
            raise _bad(f"{kind}.headers", f"The value of {name} contains a line break or NUL.")
        if "${" in value:
            raise _bad(f"{kind}.headers", "Placeholders are not substituted in headers; put them in params.")
    if len(spec.params) > MAX_PARAMS:
        raise _bad(f"{kind}.params", f"At most {MAX_PARAMS} params.")
    unknown: list[str] = []
    for name, value in spec.params.items():
        if not PARAM_NAME.match(name):
            raise _bad(f"{kind}.params", f"{name!r} is not a valid param name (letters, digits, _ . -).")
        if "\0" in value:
            raise _bad(f"{kind}.params", f"The value of {name} contains a NUL character.")
        unknown += [n for n in unknown_placeholders(value, kind) if n not in unknown]
    if unknown:
        allowed = ", ".join(f"${{{n}}}" for n in PLACEHOLDERS[kind])
        listed = ", ".join(f"${{{n}}}" for n in unknown)
        raise _bad(f"{kind}.params", f"Unknown placeholders: {listed}. The {kind} request may use {allowed}.")


def _check_url(kind: str, url: str, deployment: Deployment) -> None:
    """Scheme, shape, and where the address is: public for basic, or inside an active peering."""
    field = f"{kind}.url"
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise _bad(field, f"Not a valid URL: {exc}.") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise _bad(field, "Use an http:// or https:// URL.")
    if "${" in url:
        raise _bad(field, "Placeholders go in params, not in the URL.")
    if parts.username is not None or parts.password is not None:
        raise _bad(field, "Put credentials in a header, not in the URL.")
    try:
        URLValidator(schemes=["http", "https"])(url)
    except DjangoValidationError as exc:
        raise _bad(field, "Not a valid URL.") from exc
    networks = active_peering_networks(deployment) if deployment.tier != Tier.BASIC else []
    try:
        check_url(url, allow_networks=networks)
    except OutboundError as exc:
        message = str(exc)
        if deployment.tier == Tier.BASIC:
            message += " A basic deployment's HTTP authentication must use a public address."
        elif exc.kind == "blocked" and _is_private_host(parts.hostname or ""):
            message += (" A private address needs an active VPC peering whose CIDR contains it"
                        f"{'' if networks else ' (this deployment has no active peering)'}.")
        raise _bad(field, message) from exc
    except (ValueError, UnicodeError) as exc:
        raise _bad(field, f"Not a valid URL: {exc}.") from exc


def _is_private_host(host: str) -> bool:
    """A literal private address, or a name (whose addresses check_url found blocked): worth the hint."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return True
    return address.is_private and not (address.is_loopback or address.is_link_local)


def validate_request(kind: str, spec: HttpRequestSpec, deployment: Deployment) -> None:
    _check_shape(kind, spec)
    _check_url(kind, spec.url, deployment)


# --- building the request exactly as the broker would -----------------------------------------------
def render_template(template: str, values: dict[str, str]) -> str:
    """Substitutes ``${name}`` placeholders (a missing value is empty, as in EMQX)."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), template)


def build_request(spec: HttpRequestSpec, values: dict[str, str]) -> BuiltRequest:
    rendered = {name: render_template(template, values) for name, template in spec.params.items()}
    headers = dict(spec.headers)
    if spec.method == HttpAuthMethod.GET:
        url = spec.url
        if rendered:
            query = urlencode(rendered, quote_via=quote, safe="")
            base = url.partition("#")[0]
            url = f"{base}{'&' if '?' in base else '?'}{query}"
        return BuiltRequest("GET", url, headers, None)
    headers["content-type"] = "application/json"
    body = json.dumps(rendered, ensure_ascii=False, separators=(",", ":")).encode()
    return BuiltRequest("POST", spec.url.partition("#")[0], headers, body)


def decide(status_code: int, headers: dict[str, str], body: bytes) -> tuple[str, bool | None]:
    """(decision, is_superuser) by the broker's rules, for a response that arrived."""
    if 200 <= status_code < 300:
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        if "json" in content_type.lower() or body[:1] in (b"{",):
            try:
                data = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                data = None
            if isinstance(data, dict) and data.get("result") in DECISIONS:
                superuser = data.get("is_superuser")
                return data["result"], superuser if isinstance(superuser, bool) else None
        return "allow", None
    if 400 <= status_code < 500:
        return "deny", None
    return "ignore", None


# --- services -------------------------------------------------------------------------------------
def _locked_deployment(principal: Principal, deployment: Deployment) -> Deployment:
    locked = Deployment.objects.select_for_update().get(pk=deployment.pk, organization=principal.organization)
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
            _check_shape(kind, spec)
    # DNS is looked up outside the transaction: no row lock is held while a resolver answers.
    for kind, spec in requests.items():
        if spec is not None:
            _check_url(kind, spec.url, deployment)
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
            prefix = _PREFIX[kind]
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
    """Removes the configuration: the broker goes back to the platform's default authentication."""
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
        raise _bad("kind", f"The deployment has no {kind} request configured.")
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


# --- the broker's configuration ---------------------------------------------------------------------
def _hocon_string(value: str) -> str:
    # A JSON string is a valid HOCON quoted string, and nothing inside quotes is substituted, so a
    # customer's "${username}" stays the broker's placeholder and cannot reach the environment.
    return json.dumps(value, ensure_ascii=False)


def header_env_name(kind: str, index: int) -> str:
    return f"MQCLOUD_HTTP_{_PREFIX[kind].upper()}_HEADER_{index}"


def _request_block(kind: str, spec: HttpRequestSpec, indent: str,
                   secret_env: list[tuple[str, str]]) -> list[str]:
    lines = [
        f"{indent}enable = true",
        f"{indent}method = {spec.method}",
        f"{indent}url = {_hocon_string(spec.url)}",
        f"{indent}headers {{",
    ]
    if spec.method == HttpAuthMethod.POST:
        lines.append(f"{indent}  \"content-type\" = \"application/json\"")
    for index, name in enumerate(sorted(spec.headers)):
        env = header_env_name(kind, index)
        secret_env.append((env, spec.headers[name]))
        lines.append(f"{indent}  {_hocon_string(name.lower())} = ${{?{env}}}")
    lines.append(f"{indent}}}")
    lines.append(f"{indent}body {{")
    lines += [f"{indent}  {_hocon_string(name)} = {_hocon_string(value)}" for name, value in spec.params.items()]
    lines.append(f"{indent}}}")
    lines.append(f"{indent}request_timeout = \"{spec.timeout_ms}ms\"")
    return lines


def broker_config(config: HttpAuthConfig | None) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """(HOCON fragments for emqx.conf, secret environment variables) of a deployment's HTTP auth.

    Nothing when there is no configuration or it is disabled: the broker keeps its default chain.
    """
    if config is None or not config.enabled:
        return (), ()
    secret_env: list[tuple[str, str]] = []
    fragments = []
    authn = request_spec(config, AUTHENTICATION)
    if authn is not None:
        fragments.append("\n".join([
            "authentication = [",
            "  {",
            "    mechanism = password_based",
            "    backend = http",
            *_request_block(AUTHENTICATION, authn, "    ", secret_env),
            "  }",
            "]",
        ]))
    authz = request_spec(config, AUTHORIZATION)
    if authz is not None:
        fragments.append("\n".join([
            "authorization {",
            "  no_match = deny",
            "  deny_action = ignore",
            "  sources = [",
            "    {",
            "      type = http",
            *_request_block(AUTHORIZATION, authz, "      ", secret_env),
            "    }",
            "  ]",
            "}",
        ]))
    return tuple(fragments), tuple(secret_env)
