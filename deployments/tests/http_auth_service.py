"""A real HTTP auth service on loopback for the HTTP auth tests (``with serve_auth() as service``)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from django.test import override_settings


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class AuthService:
    url: str
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"
    delay_s: float = 0.0
    received: list[Received] = field(default_factory=list)

    def answer(self, status: int, body: bytes | dict = b"", content_type: str = "text/plain") -> None:
        if isinstance(body, dict):
            body, content_type = json.dumps(body).encode(), "application/json"
        self.status, self.body, self.content_type = status, body, content_type


@contextmanager
def serve_auth() -> Iterator[AuthService]:
    """Answers every GET/POST with the configured status/body (after ``delay_s``) and records the request;
    the guarded outbound client may reach loopback while the fixture is active."""
    service = AuthService(url="")

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            parts = urlsplit(self.path)
            service.received.append(Received(self.command, parts.path, parse_qs(parts.query, keep_blank_values=True),
                                             {k.lower(): v for k, v in self.headers.items()},
                                             self.rfile.read(length)))
            if service.delay_s:
                time.sleep(service.delay_s)
            try:
                self.send_response(service.status)
                self.send_header("Content-Type", service.content_type)
                self.send_header("Content-Length", str(len(service.body)))
                self.end_headers()
                self.wfile.write(service.body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_GET = do_POST = _handle

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    service.url = f"http://127.0.0.1:{server.server_port}/mqtt/auth"
    try:
        with override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True):
            yield service
    finally:
        server.shutdown()
        server.server_close()
