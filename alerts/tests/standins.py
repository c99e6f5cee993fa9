"""Local stand-ins for delivery targets: an HTTP receiver (webhooks, PagerDuty Events v2) and an SMTP sink."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import hmac
import json
import socket
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller


class Receiver:
    """Records every POST; ``responder(request) -> (status, headers, body)`` decides the answer."""

    def __init__(self, responder: Callable[[dict], tuple[int, dict, bytes]] | None = None, *,
                 tls: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> None:
        self.requests: list[dict] = []
        self.responder = responder or (lambda request: (202, {}, b'{"status":"success"}'))
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            # Keeps connections open between requests, as real endpoints do (every answer has a Content-Length),
            # and, as they do, sends without Nagle's delay: the answer goes out in two writes (head, body), and the
            # second would wait for the client's delayed ACK of the first (40 ms) on a kept-alive connection.
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802 (http.server's hook name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                           "body": body}
                receiver.requests.append(request)
                status, headers, payload = receiver.responder(request)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:  # serves https; ``host`` is the name the certificate is for (it must resolve here)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://{host}:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def json_bodies(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.requests]


def verify_standard_webhook(request: dict, secret: str) -> dict:
    """Verifies a Standard Webhooks signature the way a receiver would; returns the parsed body."""
    headers = request["headers"]
    key = base64.b64decode(secret.removeprefix("whsec_")) if secret.startswith("whsec_") else secret.encode()
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + request["body"]
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    signatures = [part.split(",", 1)[1] for part in headers["webhook-signature"].split() if part.startswith("v1,")]
    if not any(hmac.compare_digest(expected, sig) for sig in signatures):
        raise AssertionError("bad webhook signature")
    return json.loads(request["body"])


class SmtpSink:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's hook name)
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def smtp_controller(sink: SmtpSink) -> tuple[Controller, int]:
    port = free_port()
    return Controller(sink, hostname="127.0.0.1", port=port), port
