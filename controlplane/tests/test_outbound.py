"""The guarded outbound client against real sockets on loopback: what it refuses, and that a refused
address is never connected to."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import override_settings

from controlplane.outbound import OutboundBlocked, OutboundError, address_refusal, check_url, send, tls_context
from controlplane.tests.servers import BANNERS, raw_server
from controlplane.tests.tls import local_ca


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's hook name)
        route = self.server.routes.get(self.path.split("?")[0])
        self.server.hits.append(self.path)
        if route is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        route(self)


@contextmanager
def local_server(routes: dict, tls: ssl.SSLContext | None = None) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.routes, server.hits = routes, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def url_of(server: ThreadingHTTPServer, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def ok(handler: BaseHTTPRequestHandler) -> None:
    payload = b'{"result": "allow"}'
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:a9fe:a9fe]/",  # 169.254.169.254, IPv4-mapped
        "http://[2002:a00:1::]/",  # 6to4 wrapping 10.0.0.1
        "http://[64:ff9b::a00:1]/",  # NAT64 wrapping 10.0.0.1
        "http://[fd00:ec2::254]/",
        "http://[fe80::1]/",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",  # CGNAT
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://127.0.0.1/",
        "http://localhost/",  # a name that resolves to a blocked address
        "http://2130706433/",  # 127.0.0.1 as a decimal integer host
        "file:///etc/passwd",
        "gopher://example.com/",
        "ftp://example.com/",
        "http://user:pw@example.com/",
        "not a url",
    ],
)
def test_blocked_urls_are_refused_with_a_reason(url):
    with pytest.raises(OutboundBlocked) as caught:
        check_url(url)
    assert caught.value.kind == "blocked" and caught.value.message


@pytest.mark.parametrize("url", [
    "http://168.63.129.16/machine?comp=goalstate",  # Azure WireServer (a public address)
    "http://[::ffff:168.63.129.16]/",  # the same, IPv4-mapped
    "http://[2002:a83f:8110::]/",  # the same, 6to4
    "http://169.254.169.254/latest/meta-data/",  # AWS, GCP, Azure IMDS, DigitalOcean, Hetzner, OpenStack
    "http://169.254.169.253/",  # AWS DNS
    "http://169.254.169.123/",  # AWS time sync
    "http://169.254.0.23/",  # Tencent
    "http://100.100.100.200/latest/meta-data/",  # Alibaba
    "http://192.0.0.192/",  # Oracle
    "http://[fd00:ec2::254]/",  # AWS IPv6 IMDS
    "http://[fd00:ec2::253]/",  # AWS IPv6 DNS
    "http://[fd20:ce::254]/",  # GCP IPv6 metadata
    "http://161.26.0.10/",  # IBM Cloud service network (DNS, metadata)
    "http://166.9.0.1/",  # IBM Cloud private service endpoints
])
def test_every_cloud_metadata_address_is_refused(url):
    with pytest.raises(OutboundBlocked):
        check_url(url)


@pytest.mark.parametrize("host", [
    "metadata", "metadata.google.internal", "METADATA.Google.Internal.", "metadata.goog", "instance-data",
    "instance-data.ec2.internal", "metadata.tencentyun.com", "metadata.platformequinix.com", "metadata.packet.net",
    "kubernetes.default.svc", "emqx-headless.mq-abc.svc.cluster.local", "anything.internal",
])
def test_metadata_host_names_are_refused_by_name_before_any_lookup(host, monkeypatch):
    def tripwire(*args, **kwargs):
        raise AssertionError(f"{host} was looked up")

    monkeypatch.setattr(socket, "getaddrinfo", tripwire)
    with pytest.raises(OutboundBlocked) as caught:
        check_url(f"http://{host}/computeMetadata/v1/")
    assert "not allowed" in caught.value.message


@override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True)
@pytest.mark.parametrize("payload", BANNERS)
def test_what_a_server_sends_never_reaches_the_error_message(payload):
    with raw_server(payload) as url, pytest.raises(OutboundError) as caught:
        send("GET", url, timeout=2)
    assert caught.value.kind == "protocol"
    assert "SECRET" not in caught.value.message and "SECRET" not in str(caught.value)
    assert caught.value.message.startswith("The server")


def test_a_refused_name_does_not_tell_what_it_resolved_to():
    """The control plane's resolver may know internal names: saying what a name resolved to would let a
    customer map them through our error messages."""
    with pytest.raises(OutboundBlocked) as caught:
        check_url("http://localhost/")
    assert "127.0.0.1" not in caught.value.message and "::1" not in caught.value.message
    assert "localhost" in caught.value.message and "not public" in caught.value.message
    with pytest.raises(OutboundBlocked) as caught:  # an address the customer typed may be named back
        check_url("http://10.1.2.3/")
    assert "10.1.2.3" in caught.value.message


def test_public_addresses_pass_the_check():
    assert address_refusal(__import__("ipaddress").ip_address("93.184.216.34")) is None
    assert address_refusal(__import__("ipaddress").ip_address("2606:2800:220:1:248:1893:25c8:1946")) is None


def test_an_allowed_private_network_passes_only_inside_it():
    import ipaddress

    peering = [ipaddress.ip_network("10.20.0.0/16")]
    assert check_url("http://10.20.3.4/auth", allow_networks=peering)
    with pytest.raises(OutboundBlocked):
        check_url("http://10.21.3.4/auth", allow_networks=peering)


def test_a_blocked_address_is_never_connected_to():
    with local_server({"/": ok}) as server:
        with pytest.raises(OutboundBlocked):
            send("GET", url_of(server, "/"))
        assert server.hits == []


@override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True)
def test_a_plain_request_with_loopback_allowed_for_tests():
    with local_server({"/auth": ok}) as server:
        response = send("GET", url_of(server, "/auth?clientid=a%26b"))
    assert response.status == 200 and response.json() == {"result": "allow"}
    assert server.hits == ["/auth?clientid=a%26b"]
    assert response.elapsed_ms > 0


@override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True)
def test_redirects_are_not_followed_by_default_and_rechecked_when_they_are():
    def to_metadata(handler):
        handler.send_response(302)
        handler.send_header("Location", "http://169.254.169.254/latest/meta-data/")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    with local_server({"/hop": to_metadata}) as server:
        assert send("GET", url_of(server, "/hop")).status == 302
        with pytest.raises(OutboundBlocked):
            send("GET", url_of(server, "/hop"), max_redirects=3)


@pytest.fixture
def silent_server():
    """Accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    stop.set()
    thread.join(2)
    for conn in accepted:
        conn.close()
    listener.close()


@override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True)
def test_a_server_that_never_answers_times_out(silent_server):
    started = time.monotonic()
    with pytest.raises(OutboundError) as caught:
        send("GET", silent_server, timeout=0.5)
    assert caught.value.kind == "timeout"
    assert time.monotonic() - started < 3


@override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True)
def test_an_endless_body_is_cut_at_the_size_cap():
    def endless(handler):
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        try:
            while True:
                chunk = b"x" * 8192
                handler.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        except OSError:
            pass

    with local_server({"/": endless}) as server:
        with pytest.raises(OutboundError) as caught:
            send("GET", url_of(server, "/"), max_bytes=100_000)
    assert caught.value.kind == "too_large"


@override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True)
def test_a_slow_drip_hits_the_total_deadline():
    def drip(handler):
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        try:
            for _ in range(100):
                handler.wfile.write(b"1\r\nx\r\n")
                handler.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass

    with local_server({"/": drip}) as server:
        started = time.monotonic()
        with pytest.raises(OutboundError) as caught:
            send("GET", url_of(server, "/"), timeout=0.5)
    assert caught.value.kind == "timeout"
    assert time.monotonic() - started < 2


@override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True)
def test_connection_refused_is_a_connection_error():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(OutboundError) as caught:
        send("GET", f"http://127.0.0.1:{port}/", timeout=2)
    assert caught.value.kind == "connection"
    assert "refused" in caught.value.message and " at 0x" not in caught.value.message


@pytest.fixture
def trusted_ca(tmp_path, monkeypatch):
    """A local CA the process trusts on top of the system's, as a real customer's public CA would be."""
    ca = local_ca(tmp_path / "trusted")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.trust_bundle()))
    tls_context.cache_clear()
    yield ca
    tls_context.cache_clear()


@override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True)
def test_one_tls_context_serves_every_request_and_each_host_name_is_still_verified(trusted_ca):
    with local_server({"/": ok}, tls=trusted_ca.server_context("localhost")) as server:
        port = server.server_address[1]
        context = tls_context()
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert send("GET", f"https://localhost:{port}/?a").status == 200
        # The same server, certificate and shared context, by address: the certificate does not name 127.0.0.1.
        with pytest.raises(OutboundError) as caught:
            send("GET", f"https://127.0.0.1:{port}/?b")
        assert caught.value.kind == "protocol" and "127.0.0.1" in caught.value.message
        assert "localhost" not in caught.value.message  # what the certificate says is the server's, not ours
        assert send("GET", f"https://localhost:{port}/?c").status == 200  # nothing stuck from the failure
        assert tls_context() is context
    assert server.hits == ["/?a", "/?c"]


@override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True)
def test_a_certificate_from_an_untrusted_authority_is_refused(trusted_ca, tmp_path):
    stranger = local_ca(tmp_path / "stranger")
    with local_server({"/": ok}, tls=stranger.server_context("localhost")) as server:
        with pytest.raises(OutboundError) as caught:
            send("GET", f"https://localhost:{server.server_address[1]}/")
    assert caught.value.kind == "protocol" and server.hits == []


@pytest.mark.parametrize(("url", "sentence"), [
    ("http://127.0.0.1/hook", "127.0.0.1 is a loopback address; requests go only to public addresses."),
    ("http://10.1.2.3/", "10.1.2.3 is a private address; requests go only to public addresses."),
    ("http://169.254.169.254/", "169.254.169.254 is a link-local address; requests go only to public addresses."),
    ("http://100.64.0.1/", "100.64.0.1 is a reserved address, not a public one; requests go only to public "
                           "addresses."),
    ("http://localhost/", "localhost resolves to an address that is not public; requests go only to public "
                          "addresses."),
])
def test_a_refused_address_is_one_clear_sentence(url, sentence):
    """Issue 14 (10): the refusal read "127.0.0.1 resolves to 127.0.0.1 is a private…"."""
    with pytest.raises(OutboundBlocked) as caught:
        check_url(url)
    assert caught.value.message == sentence
    assert caught.value.reason == sentence.split(";")[0]  # the fact alone, for callers with their own rule
