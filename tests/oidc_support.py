"""OpenID Providers on loopback for the SSO tests (issue 17).

``start_oidc_provider``: the certified ``oidc-provider`` package from npm (deploy/oidc-provider/idp.mjs) in a
Node subprocess, with static users and groups. ``BadProvider``: a tiny OP of the test's own, for the refusals a
real OP will not produce (a wrong issuer or audience, an expired or unsigned token...): it serves discovery,
JWKS and a token endpoint that answers with whatever ID token the test hands it.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import RSAKey

IDP_DIR = Path(__file__).resolve().parent.parent / "deploy" / "oidc-provider"
CLIENT_ID = "mqcloud-console"
CLIENT_SECRET = "a-client-secret-for-tests-only"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_discovery(issuer: str, process: subprocess.Popen | None = None, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the OpenID Provider exited: {process.stdout.read() if process.stdout else ''}")
        try:
            if requests.get(f"{issuer}/.well-known/openid-configuration", timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no discovery document at {issuer} after {timeout_s}s")


@contextmanager
def start_oidc_provider(*, redirect_uris: list[str], users: dict[str, dict[str, Any]]) -> Iterator[str]:
    """Runs the npm ``oidc-provider`` on a free loopback port; yields its issuer URL."""
    if shutil.which("node") is None or not (IDP_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.skip("needs node and deploy/oidc-provider/node_modules (make oidc-provider installs it)")
    port = free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as config:
        json.dump({"port": port, "users": users, "clients": [
            {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": redirect_uris}]}, config)
    process = subprocess.Popen(["node", str(IDP_DIR / "idp.mjs"), config.name], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    issuer = f"http://127.0.0.1:{port}"
    try:
        _wait_for_discovery(issuer, process)
        yield issuer
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        Path(config.name).unlink(missing_ok=True)


class BadProvider:
    """A loopback OP whose token endpoint answers with ``next_id_token`` (set by the test)."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "bad-op-1", "use": "sig"})
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.next_id_token = ""
        self.discovery_issuer = self.issuer
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                pass

            def _json(self, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    self._json({"issuer": provider.discovery_issuer,
                                "authorization_endpoint": f"{provider.issuer}/auth",
                                "token_endpoint": f"{provider.issuer}/token", "jwks_uri": f"{provider.issuer}/jwks",
                                "id_token_signing_alg_values_supported": ["RS256", "none"],
                                "response_types_supported": ["code"], "subject_types_supported": ["public"]})
                elif self.path == "/jwks":
                    self._json({"keys": [provider.key.as_dict(private=False)]})
                else:
                    self.send_error(404)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._json({"access_token": "at-" + str(time.time()), "token_type": "Bearer", "expires_in": 300,
                            "id_token": provider.next_id_token})

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> BadProvider:
        self.thread.start()
        _wait_for_discovery(self.issuer)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def claims(self, expected_nonce: str, **overrides: Any) -> dict[str, Any]:
        """Good claims for the login waiting for ``expected_nonce``; an override of None drops the claim."""
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": CLIENT_ID, "sub": "u-1", "iat": now, "exp": now + 300,
                  "nonce": expected_nonce,
                  "email": "ben@acme.test", "email_verified": True, "groups": ["mq-devs"]}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(self, claims: dict[str, Any], key: RSAKey | None = None) -> str:
        return jwt.encode({"alg": "RS256", "kid": "bad-op-1"}, claims, key or self.key)

    @staticmethod
    def unsigned(claims: dict[str, Any]) -> str:
        import base64

        def part(value: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

        return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."
