"""Validation of a deployment's custom HTTP authentication and authorization (ACL) requests.

What a request may be: method, timeout, header names and values, params and their placeholders
(``params`` values only; the URL must be a fixed address so it can be checked), and where the URL may
point by tier (public for basic, or inside an active VPC peering). Also the request's shape as stored on
the model (``HttpRequestSpec``, ``request_spec``), shared by the services and the broker-config renderer.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator

from controlplane.errors import field_invalid
from controlplane.outbound import OutboundBlocked, OutboundError, check_url
from deployments.models import Deployment, HttpAuthConfig, HttpAuthMethod, Tier
from deployments.selectors import active_peering_networks
from k8s.emqx_http import PLACEHOLDER as EMQX_PLACEHOLDER

AUTHENTICATION = "authentication"
AUTHORIZATION = "authorization"
KINDS = (AUTHENTICATION, AUTHORIZATION)
PREFIX = {AUTHENTICATION: "authn", AUTHORIZATION: "authz"}

AUTHN_PLACEHOLDERS = ("clientid", "username", "password", "peerhost", "cert_subject")
AUTHZ_PLACEHOLDERS = (*AUTHN_PLACEHOLDERS, "topic", "action")
PLACEHOLDERS = {AUTHENTICATION: AUTHN_PLACEHOLDERS, AUTHORIZATION: AUTHZ_PLACEHOLDERS}
PLACEHOLDER = EMQX_PLACEHOLDER  # the same syntax the broker substitutes

TIMEOUT_MS_MIN, TIMEOUT_MS_MAX = 100, 10_000
MAX_HEADERS, MAX_PARAMS = 20, 32
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")
PARAM_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
# Set by the broker itself; a customer value would break the request or smuggle another one.
RESERVED_HEADERS = frozenset({"host", "content-type", "content-length", "transfer-encoding", "connection",
                              "keep-alive", "upgrade", "te", "trailer", "expect"})


@dataclass(frozen=True)
class HttpRequestSpec:
    """One configured request (authentication or authorization), header values in clear."""

    method: str  # "get" or "post"
    url: str
    headers: dict[str, str]
    params: dict[str, str]
    timeout_ms: int


# --- reading the model ------------------------------------------------------------------------------
def request_spec(config: HttpAuthConfig, kind: str) -> HttpRequestSpec | None:
    prefix = PREFIX[kind]
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
def unknown_placeholders(text: str, kind: str) -> list[str]:
    return [name for name in PLACEHOLDER.findall(text) if name not in PLACEHOLDERS[kind]]


def check_shape(kind: str, spec: HttpRequestSpec) -> None:
    if spec.method not in HttpAuthMethod.values:
        raise field_invalid(f"{kind}.method", "Use GET or POST.")
    if not TIMEOUT_MS_MIN <= spec.timeout_ms <= TIMEOUT_MS_MAX:
        raise field_invalid(f"{kind}.timeout_ms", f"Use {TIMEOUT_MS_MIN} to {TIMEOUT_MS_MAX} milliseconds.")
    if len(spec.headers) > MAX_HEADERS:
        raise field_invalid(f"{kind}.headers", f"At most {MAX_HEADERS} headers.")
    seen: set[str] = set()
    for name, value in spec.headers.items():
        if not HEADER_NAME.match(name):
            raise field_invalid(f"{kind}.headers", f"{name!r} is not a valid header name.")
        if name.lower() in RESERVED_HEADERS:
            raise field_invalid(f"{kind}.headers", f"The broker sets the {name} header itself.")
        if name.lower() in seen:
            raise field_invalid(f"{kind}.headers", f"The header {name} is given twice.")
        seen.add(name.lower())
        if any(ch in value for ch in "\r\n\0"):
            raise field_invalid(f"{kind}.headers", f"The value of {name} contains a line break or NUL.")
        if "${" in value:
            raise field_invalid(f"{kind}.headers", "Placeholders are not substituted in headers; put them in params.")
    if len(spec.params) > MAX_PARAMS:
        raise field_invalid(f"{kind}.params", f"At most {MAX_PARAMS} params.")
    unknown: list[str] = []
    for name, value in spec.params.items():
        if not PARAM_NAME.match(name):
            raise field_invalid(f"{kind}.params", f"{name!r} is not a valid param name (letters, digits, _ . -).")
        if "\0" in value:
            raise field_invalid(f"{kind}.params", f"The value of {name} contains a NUL character.")
        unknown += [n for n in unknown_placeholders(value, kind) if n not in unknown]
    if unknown:
        allowed = ", ".join(f"${{{n}}}" for n in PLACEHOLDERS[kind])
        listed = ", ".join(f"${{{n}}}" for n in unknown)
        raise field_invalid(f"{kind}.params", f"Unknown placeholders: {listed}. The {kind} request may use {allowed}.")


def check_request_url(kind: str, url: str, deployment: Deployment) -> None:
    """Scheme, shape, and where the address is: public for basic, or inside an active peering."""
    field = f"{kind}.url"
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise field_invalid(field, f"Not a valid URL: {exc}.") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise field_invalid(field, "Use an http:// or https:// URL.")
    if "${" in url:
        raise field_invalid(field, "Placeholders go in params, not in the URL.")
    if parts.username is not None or parts.password is not None:
        raise field_invalid(field, "Put credentials in a header, not in the URL.")
    try:
        URLValidator(schemes=["http", "https"])(url)
    except DjangoValidationError as exc:
        raise field_invalid(field, "Not a valid URL.") from exc
    networks = active_peering_networks(deployment) if deployment.tier != Tier.BASIC else []
    try:
        check_url(url, allow_networks=networks)
    except OutboundBlocked as exc:
        # One sentence: the fact from the guard, then the rule that applies to this deployment.
        if deployment.tier == Tier.BASIC:
            message = f"{exc.reason}; a basic deployment's HTTP authentication must use a public address."
        elif _is_private_host(parts.hostname or ""):
            message = (f"{exc.reason}; a private address needs an active VPC peering whose CIDR contains it"
                       f"{'' if networks else ', and this deployment has none'}.")
        else:
            message = exc.message
        raise field_invalid(field, message) from exc
    except OutboundError as exc:
        raise field_invalid(field, exc.message) from exc
    except (ValueError, UnicodeError) as exc:
        raise field_invalid(field, f"Not a valid URL: {exc}.") from exc


def _is_private_host(host: str) -> bool:
    """A literal private address, or a name (whose addresses check_url found blocked): worth the hint."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return True
    return address.is_private and not (address.is_loopback or address.is_link_local)


def validate_request(kind: str, spec: HttpRequestSpec, deployment: Deployment) -> None:
    check_shape(kind, spec)
    check_request_url(kind, spec.url, deployment)
