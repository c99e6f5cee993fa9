"""The one guarded client for every HTTP request to a customer-supplied URL (webhooks, HTTP-auth tests,
VAT checks).

Customer URLs are attacker-controlled: without these guards a URL could make our servers talk to the
cloud metadata service, to other tenants' brokers or to the control plane's own databases (SSRF). So:
- only http and https;
- the host is resolved once, every address is checked, and the connection goes to the checked address
  (pinned), so a DNS answer that changes between check and connect (rebinding) gains nothing;
- private, loopback, link-local, CGNAT, multicast, reserved, unspecified and metadata addresses are
  refused, IPv4 and IPv6 alike, including IPv4 embedded in IPv6 (mapped, 6to4, NAT64, Teredo); metadata
  host names are refused by name, before any lookup;
- nothing the server sends reaches an error message: callers show errors to customers (test sends, the
  delivery log), so a URL pointed at a Redis or SSH port must not read its banner back to them. Reasons
  are ours (status, "not HTTP", "connection refused"); the body is only in ``OutboundResponse.body``.
- redirects are not followed unless asked, and then every hop is checked again;
- connect timeout, total deadline, and a cap on the response size.
Tests allow loopback with ``OUTBOUND_HTTP_ALLOW_LOOPBACK``; a caller may allow specific private networks
(a deployment's active VPC peerings) with ``allow_networks``.
"""

from __future__ import annotations

import errno
import functools
import http.client
import ipaddress
import os
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import urllib3
from django.conf import settings

from controlplane import request_context

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
_CHUNK = 16 * 1024

#: Where we never connect (and the brokers' egress policy never lets them go, k8s.render). Cloud metadata
#: services sit inside these: 169.254.169.254 (AWS, GCP, Azure, DigitalOcean, Hetzner, OpenStack, Huawei),
#: 169.254.169.253 and .123 (AWS DNS and time), 169.254.0.23 (Tencent), 100.100.100.200 (Alibaba, CGNAT),
#: 192.0.0.192 (Oracle), fd00:ec2::254/253/123 (AWS IPv6), fd20:ce::254 (GCP IPv6), fd00:c1::a9fe:a9fe
#: (Oracle IPv6). The ones on addresses that look public are listed by name below the ranges.
BLOCKED_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
        "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
        "::/128", "::1/128", "100::/64", "2001:db8::/32", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
        # Metadata and platform services on addresses outside the private ranges:
        "168.63.129.16/32",  # Azure WireServer (VM agent, DNS, health probes): answers every VM in Azure
        "161.26.0.0/16",  # IBM Cloud service network (DNS, NTP, metadata); not routed on the internet
        "166.8.0.0/14",  # IBM Cloud private service endpoints
    )
)

#: Host names of metadata services, refused by name before any lookup: inside a cloud the resolver (or a search
#: domain, for the single labels) answers them with a metadata address, and Equinix's is a public address
#: that only answers its own machines. Names under a listed suffix are refused too.
BLOCKED_HOST_NAMES = frozenset({
    "metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal",
    "metadata.tencentyun.com", "metadata.platformequinix.com", "metadata.packet.net", "metadata.azure.internal",
    "kubernetes", "kubernetes.default",
})
#: Suffixes that never name a public service: ".internal" is reserved for private use (ICANN, 2024; GCP and
#: AWS internal names live there), the others are the cluster's own DNS.
BLOCKED_HOST_SUFFIXES = (".internal", ".svc", ".cluster.local")
#: The rule a refused address breaks, ending the one sentence that says why.
ONLY_PUBLIC = "requests go only to public addresses"
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class OutboundError(Exception):
    """The request could not be made or completed. ``kind`` says why, for logs and API answers."""

    kind = "connection"

    def __init__(self, message: str, *, kind: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if kind is not None:
            self.kind = kind


class OutboundBlocked(OutboundError):
    """The URL is not allowed: a scheme we do not speak or an address we never connect to.

    ``reason`` is the fact alone ("127.0.0.1 is a loopback address"), so a caller with a more specific rule
    (HTTP authentication of a basic deployment) can finish the one sentence itself instead of adding a second.
    """

    kind = "blocked"

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message.rstrip(".")


@dataclass
class OutboundResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed_ms: float
    url: str
    redirects: list[str] = field(default_factory=list)

    def json(self) -> Any:
        import json

        return json.loads(self.body.decode("utf-8"))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries, for the forms that route to it."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _IPV4_COMPATIBLE:  # deprecated
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_refusal(address: IPAddress, allow_networks: Sequence[IPNetwork] = ()) -> str | None:
    """Why we would not connect to ``address`` (None: we would)."""
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            candidates.append(embedded)
    for candidate in candidates:
        if any(candidate in net for net in allow_networks if net.version == candidate.version):
            continue
        if getattr(settings, "OUTBOUND_HTTP_ALLOW_LOOPBACK", False) and any(
                candidate in net for net in _LOOPBACK if net.version == candidate.version):
            continue
        for net in BLOCKED_NETWORKS:
            if net.version == candidate.version and candidate in net:
                return f"{address} is {_address_kind(candidate)}"
        if candidate.is_multicast or candidate.is_unspecified or candidate.is_reserved:
            return f"{address} is {_address_kind(candidate)}"
    return None


def _address_kind(address: IPAddress) -> str:
    """A refused address's kind in words; the most specific first (a loopback address is also "reserved")."""
    kinds = (("is_loopback", "a loopback address"), ("is_link_local", "a link-local address"),
             ("is_multicast", "a multicast address"), ("is_unspecified", "an unspecified address"),
             ("is_private", "a private address"))
    return next((words for name, words in kinds if getattr(address, name)), "a reserved address, not a public one")


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[IPAddress, ...]


def _resolve(url: str, allow_networks: Sequence[IPNetwork]) -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OutboundBlocked(f"The URL is not valid: {exc}.") from exc
    scheme = (parts.scheme or "").lower()
    if scheme not in ALLOWED_SCHEMES:
        raise OutboundBlocked(f"Only http and https URLs are allowed, not {scheme or 'a URL without a scheme'}.")
    host = parts.hostname
    if not host:
        raise OutboundBlocked("The URL has no host.")
    if parts.username or parts.password:
        raise OutboundBlocked("Credentials in the URL are not allowed; use a header.")
    port = port or DEFAULT_PORTS[scheme]
    if host_name_refused(host):
        reason = f"{host} is a cloud metadata or cluster-internal name"
        raise OutboundBlocked(f"{reason}; requests there are not allowed.", reason=reason)
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses: tuple[IPAddress, ...] = (literal,)
    else:
        try:
            infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError) as exc:
            raise OutboundError(f"The host {host} could not be resolved.", kind="connection") from exc
        addresses = tuple(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))
    for address in addresses:
        # Every answer is checked, not only the first: a resolver may rotate to the private one later.
        refusal = address_refusal(address, allow_networks)
        if refusal and literal is not None:
            raise OutboundBlocked(f"{refusal}; {ONLY_PUBLIC}.", reason=refusal)
        if refusal:
            # Not which address: our resolver may know internal names, and the message goes to the customer.
            reason = f"{host} resolves to an address that is not public"
            raise OutboundBlocked(f"{reason}; {ONLY_PUBLIC}.", reason=reason)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return _Target(scheme, host, port, path, addresses)


def host_name_refused(host: str) -> bool:
    """Whether ``host`` (as ``urlsplit`` gives it: lower case) is a metadata or cluster-internal name."""
    name = host.lower().rstrip(".")
    return name in BLOCKED_HOST_NAMES or name.endswith(BLOCKED_HOST_SUFFIXES)


def check_url(url: str, *, allow_networks: Sequence[IPNetwork] = ()) -> list[IPAddress]:
    """Raises OutboundBlocked unless every address ``url``'s host resolves to is allowed."""
    return list(_resolve(url, allow_networks).addresses)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The process's one client TLS context: certificates required and the host name checked (the defaults).

    Building one loads the system's CA bundle, which costs more than a local request; an ``SSLContext`` is safe to
    share between threads. Sharing it keeps every check: the host name to verify and send as SNI is given per
    connection (``server_hostname``/``assert_hostname`` in ``_pool``), not stored in the context. (Given
    ``assert_hostname``, urllib3 sets ``check_hostname`` off on the context and matches the certificate against
    that name itself after every handshake; every pool here passes it, so that change is the same for all users.)
    ``tls_context.cache_clear()`` starts over (the tests that trust a local CA do).
    """
    return ssl.create_default_context()


def _pool(
    target: _Target, address: IPAddress, connect_timeout: float, read_timeout: float, *, maxsize: int = 1
) -> urllib3.HTTPConnectionPool:
    timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
    if target.scheme == "https":
        # Connect to the checked address, but verify the certificate and send SNI for the host name.
        return urllib3.HTTPSConnectionPool(
            str(address), target.port, timeout=timeout, retries=False, maxsize=maxsize,
            server_hostname=target.host, assert_hostname=target.host, ssl_context=tls_context(),
        )
    return urllib3.HTTPConnectionPool(str(address), target.port, timeout=timeout, retries=False, maxsize=maxsize)


class Session:
    """Keeps connections open per checked address between requests (HTTP keep-alive), for a sender making many
    requests to the same hosts (webhook deliveries). Thread-safe; close it when done.

    Every request is still resolved and checked first: a pooled connection is only reused for the very address
    that check allowed (the pool's key), so keep-alive gains no way around the guards. ``per_host`` bounds the
    connections kept per address, not the requests (a pool hands out extra connections and drops them after).
    """

    def __init__(self, *, per_host: int = 4) -> None:
        self.per_host = per_host
        self._pools: dict[tuple[str, str, int, str], urllib3.HTTPConnectionPool] = {}
        self._lock = threading.Lock()

    def pool(self, target: _Target, address: IPAddress) -> urllib3.HTTPConnectionPool:
        key = (target.scheme, target.host, target.port, str(address))
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = self._pools[key] = _pool(target, address, 3.0, 30.0, maxsize=self.per_host)
            return pool

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def send(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    connect_timeout: float = 3.0,
    timeout: float = 10.0,
    max_bytes: int = 1_000_000,
    max_redirects: int = 0,
    allow_networks: Sequence[IPNetwork] = (),
    session: Session | None = None,
) -> OutboundResponse:
    """One guarded request. ``timeout`` bounds the whole exchange, redirects included. With a ``session`` the
    connection stays open for the next request to the same address."""
    started = time.monotonic()
    deadline = started + timeout
    redirects: list[str] = []
    current = url
    while True:
        target = _resolve(current, allow_networks)
        status, response_headers, payload = _exchange(method, target, headers or {}, body, connect_timeout,
                                                      deadline, max_bytes, session)
        location = response_headers.get("location")
        if 300 <= status < 400 and location and max_redirects > len(redirects):
            redirects.append(current)
            current = urljoin(current, location)
            if status in (301, 302, 303):
                method, body = ("GET" if method.upper() != "HEAD" else "HEAD"), None
            continue
        return OutboundResponse(status=status, headers=response_headers, body=payload,
                                elapsed_ms=(time.monotonic() - started) * 1000, url=current, redirects=redirects)


def _exchange(method: str, target: _Target, headers: dict[str, str], body: bytes | None, connect_timeout: float,
              deadline: float, max_bytes: int, session: Session | None = None) -> tuple[int, dict[str, str], bytes]:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise OutboundError("The request took too long.", kind="timeout")
    default_port = DEFAULT_PORTS[target.scheme]
    host_header = target.host if target.port == default_port else f"{target.host}:{target.port}"
    if ":" in target.host and not target.host.startswith("["):
        host_header = f"[{target.host}]" + ("" if target.port == default_port else f":{target.port}")
    request_headers = {"User-Agent": "mqcloud/1", **request_context.outbound_headers(), **headers, "Host": host_header}
    connect_s, read_s = min(connect_timeout, remaining), min(remaining, 30.0)
    timeout = urllib3.Timeout(connect=connect_s, read=read_s)  # per request: a session's pool outlives it
    if session is not None:
        pool = session.pool(target, target.addresses[0])
    else:
        pool = _pool(target, target.addresses[0], connect_s, read_s)
    try:
        response = pool.urlopen(method.upper(), target.path, body=body, headers=request_headers, redirect=False,
                                preload_content=False, assert_same_host=False, timeout=timeout)
        complete = False
        try:
            chunks: list[bytes] = []
            size = 0
            for chunk in response.stream(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise OutboundError(f"The response is larger than {max_bytes} bytes.", kind="too_large")
                if time.monotonic() > deadline:
                    raise OutboundError("The response took too long.", kind="timeout")
                chunks.append(chunk)
            complete = True
            return response.status, {k.lower(): v for k, v in response.headers.items()}, b"".join(chunks)
        finally:
            if not complete:
                # Unread bytes would be taken for the next response on this connection: never reuse it.
                response.close()
            response.release_conn()
            response.close()
    # The messages are ours, never the exception's text: that quotes what the server sent (a status line, a
    # banner, the names in its certificate), and callers show these messages to the customer.
    except OutboundError:
        raise
    except urllib3.exceptions.NewConnectionError as exc:  # a subclass of ConnectTimeoutError, but a refusal
        raise OutboundError(f"Could not connect: {_socket_reason(exc)}.", kind="connection") from exc
    except (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.ReadTimeoutError, TimeoutError) as exc:
        raise OutboundError("The server did not answer in time.", kind="timeout") from exc
    except urllib3.exceptions.SSLError as exc:
        raise OutboundError(f"TLS failed: {_tls_reason(exc, target.host)}.", kind="protocol") from exc
    except (urllib3.exceptions.ProtocolError, urllib3.exceptions.DecodeError) as exc:
        raise OutboundError(f"The server {_protocol_reason(exc)}.", kind="protocol") from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise OutboundError(f"Could not connect: {_socket_reason(exc)}.", kind="connection") from exc
    finally:
        if session is None:
            pool.close()


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps (urllib3 keeps the original as an argument, a cause or a context)."""
    seen: list[BaseException] = []
    pending = [exc]
    while pending and len(seen) < 10:
        current = pending.pop(0)
        if current in seen:
            continue
        seen.append(current)
        pending += [a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]
        pending += [c for c in (current.__cause__, current.__context__) if c is not None]
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            pending.append(reason)
    return seen


def _socket_reason(exc: BaseException) -> str:
    for cause in _causes(exc):
        if isinstance(cause, OSError) and cause.errno:
            if cause.errno in (errno.ECONNREFUSED, errno.ECONNRESET):
                return "connection refused" if cause.errno == errno.ECONNREFUSED else "connection reset"
            return os.strerror(cause.errno).lower()
    return "the connection failed"


_TLS_VERIFY_REASONS = {
    10: "the certificate has expired",
    18: "the certificate is self-signed",
    19: "the certificate chain ends in a self-signed certificate",
    20: "the certificate's issuer is not trusted",
    21: "the certificate's issuer is not trusted",
    62: "the certificate is not valid for the host name",
}


def _tls_reason(exc: BaseException, host: str) -> str:
    for cause in _causes(exc):
        # urllib3 matches the host name itself (``assert_hostname``); its message quotes the certificate.
        if type(cause).__name__ == "CertificateError" or getattr(cause, "verify_code", None) == 62:
            return f"the certificate is not valid for {host}"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return _TLS_VERIFY_REASONS.get(cause.verify_code, "the certificate could not be verified")
    return "the TLS handshake did not complete"


def _protocol_reason(exc: BaseException) -> str:
    causes = _causes(exc)
    if any(isinstance(c, http.client.IncompleteRead | urllib3.exceptions.IncompleteRead) for c in causes):
        return "closed the connection before the whole response arrived"
    if any(isinstance(c, http.client.RemoteDisconnected) for c in causes):
        return "closed the connection without answering"
    if any(isinstance(c, http.client.BadStatusLine | http.client.LineTooLong) for c in causes):
        return "did not answer with HTTP"
    if any(isinstance(c, urllib3.exceptions.DecodeError) for c in causes):
        return "sent a response that could not be decoded"
    return "broke the HTTP exchange"
