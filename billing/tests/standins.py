"""A local stand-in for the EU VIES REST API (``POST /check-vat-number``), served over real HTTP on loopback.

It answers like VIES does: a verdict with ``requestIdentifier`` when a requester is given, ``userError``
codes on a normal answer, ``actionSucceed: false`` + ``errorWrappers`` on trouble; and it can be told to
fail the next calls, to answer slowly, or to send far too much.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ViesStandIn:
    def __init__(self, registered: dict[str, str] | None = None) -> None:
        #: "DE136695976" → the trader's name; any other number is answered `valid: false`.
        self.registered = dict(registered or {})
        self.requests: list[dict] = []
        #: the next calls' answers, consumed first: an error code ("MS_UNAVAILABLE"), "userError:CODE",
        #: "http500", "slow", "huge" or "garbage".
        self.script: list[str] = []
        self.slow_s = 2.0
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's hook name)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                stand_in.requests.append(body)
                status, payload = stand_in.answer(body)
                if payload == b"slow":
                    time.sleep(stand_in.slow_s)
                    status, payload = 200, json.dumps({"valid": True}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout, size cap): as intended

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/taxation_customs/vies/rest-api/check-vat-number"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, body: dict) -> tuple[int, bytes]:
        step = self.script.pop(0) if self.script else ""
        if step == "slow":
            return 200, b"slow"
        if step == "huge":
            return 200, json.dumps({"valid": True, "name": "x" * 2_000_000}).encode()
        if step == "garbage":
            return 200, b"<html>Service temporarily unavailable</html>"
        if step == "http500":
            return 500, b'{"actionSucceed": false, "errorWrappers": [{"error": "SERVICE_UNAVAILABLE"}]}'
        if step.startswith("userError:"):
            return 200, json.dumps({"countryCode": body.get("countryCode"), "vatNumber": body.get("vatNumber"),
                                    "requestDate": "2026-03-05T10:00:00.000Z", "valid": False,
                                    "userError": step.split(":", 1)[1], "name": "---", "address": "---"}).encode()
        if step:
            return 200, json.dumps({"actionSucceed": False, "errorWrappers": [
                {"error": step, "message": f"{step} (stand-in)"}]}).encode()
        number = f"{body.get('countryCode')}{body.get('vatNumber')}"
        name = self.registered.get(number)
        answer = {"countryCode": body.get("countryCode"), "vatNumber": body.get("vatNumber"),
                  "requestDate": "2026-03-05T10:00:00.000Z", "valid": name is not None,
                  "userError": "VALID" if name is not None else "INVALID",
                  "name": name or "---", "address": "Somewhere 1\n12345 Town" if name else "---"}
        if body.get("requesterMemberStateCode") and body.get("requesterNumber"):
            answer["requestIdentifier"] = f"WAPIAAAAZ{len(self.requests):07d}"
        return 200, json.dumps(answer).encode()

    def __enter__(self) -> ViesStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
