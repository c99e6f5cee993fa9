"""The HTTP transport: a threaded standard-library server speaking HTTP/1.1 with keep-alive (the official
client pools connections) and chunked transfer for watch streams."""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from .api import Response
from .errors import ApiError

if TYPE_CHECKING:
    from .cluster import SimulatedCluster

log = logging.getLogger(__name__)


class SimulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], cluster: SimulatedCluster) -> None:
        self.cluster = cluster
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that resets its connection while its request is still being read is not the simulator's
        # failure; anything else keeps socketserver's traceback.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            log.debug("connection from %s reset", client_address)
            return
        super().handle_error(request, client_address)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), which can stall for seconds without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]  # type: ignore[assignment]  # AF_INET: (str, int)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mqcloud-k8s-sim/1"
    # Idle keep-alive connections are closed after this; urllib3 notices and reconnects on its own.
    timeout = 120
    server: SimulatorHTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle plus the client's delayed ACK
        # adds ~40 ms to every keep-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        cluster = self.server.cluster
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        length = int(headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        is_control = url.path.startswith("/_sim/")
        router = cluster.control if is_control else cluster.api
        if not is_control:
            cluster.record_api_call(method, url.path)
        try:
            response = router.route(method, url.path, query, raw, headers)
        except ApiError as exc:
            after = (exc.details or {}).get("retryAfterSeconds")
            retry = {"Retry-After": str(after)} if after is not None else {}
            response = Response(exc.code, exc.status(), retry)
        except Exception:
            log.exception("simulator failed on %s %s", method, self.path)
            response = Response(500, ApiError(500, "internal error in the Kubernetes simulator").status())
        try:
            if response.stream is not None:
                self._send_stream(response)
            else:
                self._send(response)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up first (its request timeout on a loaded machine): nobody is left to answer.
            log.debug("client went away before the answer to %s %s", method, self.path)
            self.close_connection = True

    def _send(self, response: Response) -> None:
        text = isinstance(response.body, str)
        payload = (response.body if text else json.dumps(response.body)).encode()
        self.send_response(response.code)
        self.send_header("Content-Type", "text/plain; version=0.0.4" if text else "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _send_stream(self, response: Response) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for event in response.stream or ():
                line = (json.dumps(event) + "\n").encode()
                self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the watcher went away (Watch.stop() closes the socket)
