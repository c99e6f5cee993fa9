"""The subset of EMQX 5's management API (`/api/v5`) the control plane uses, over HTTP/1.1 with Basic auth by
an API key from the bootstrap file. A threaded `http.server`; every call runs on the broker's event loop.

Errors are EMQX's: `{"code": "...", "message": "..."}` with 400 BAD_REQUEST, 401 BAD_API_KEY_OR_SECRET,
404 NOT_FOUND / CLIENTID_NOT_FOUND, 405 METHOD_NOT_ALLOWED.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .node import Node
from .state import BadRequest, BrokerState

log = logging.getLogger(__name__)

AUTHN = "password_based:built_in_database"
JSON_TYPES = ("application/json", "")


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def read_bootstrap(path: str) -> dict[str, str]:
    """`key:secret[:role]` lines (EMQX's `api_key.bootstrap_file`); blank lines and `#` comments skipped."""
    keys: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for raw in fh:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, rest = line.partition(":")
            if not sep or not key:
                raise ValueError(f"{path}: a line is not key:secret")
            keys[key] = rest.split(":", 1)[0]
    return keys


def _page(items: list[Any], query: dict[str, str]) -> dict[str, Any]:
    try:
        page, limit = int(query.get("page", "1")), int(query.get("limit", "100"))
    except ValueError:
        raise HttpError(400, "BAD_REQUEST", "page and limit must be integers") from None
    if page < 1 or not 1 <= limit <= 10000:
        raise HttpError(400, "BAD_REQUEST", "page must be >= 1 and limit within 1..10000")
    chunk = items[(page - 1) * limit : page * limit]
    meta = {"page": page, "limit": limit, "count": len(items), "hasnext": page * limit < len(items)}
    return {"data": chunk, "meta": meta}


class Api:
    """Routes to handlers; each handler runs on the event loop and returns (status, body)."""

    def __init__(self, node: Node, state: BrokerState, keys: dict[str, str], host: str,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.node, self.state, self.keys, self.host, self.loop = node, state, keys, host, loop

    def authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            key, _, secret = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        expected = self.keys.get(key)
        return expected is not None and hmac.compare_digest(expected.encode(), secret.encode())

    def route(self, method: str, parts: list[str]) -> tuple[Callable[..., Any], tuple[str, ...]]:
        routes: dict[tuple[str, ...], dict[str, Callable[..., Any]]] = {
            ("authentication", AUTHN, "users"): {"GET": self.list_users, "POST": self.create_user},
            ("authentication", AUTHN, "import_users"): {"POST": self.import_users},
            ("authentication", AUTHN, "users", "*"): {
                "GET": self.get_user, "PUT": self.update_user, "DELETE": self.delete_user,
            },
            ("authorization", "sources", "file"): {"GET": self.get_source, "PUT": self.put_source},
            ("authorization", "settings"): {"GET": self.get_settings, "PUT": self.put_settings},
            ("clients",): {"GET": self.list_clients},
            ("clients", "*"): {"GET": self.get_client, "DELETE": self.kick},
            ("stats",): {"GET": self.stats},
            ("metrics",): {"GET": self.metrics},
        }
        for pattern, methods in routes.items():
            if len(pattern) == len(parts) and all(p in ("*", part) for p, part in zip(pattern, parts, strict=True)):
                if method not in methods:
                    raise HttpError(405, "METHOD_NOT_ALLOWED", "Method Not Allowed")
                args = tuple(part for p, part in zip(pattern, parts, strict=True) if p == "*")
                return methods[method], args
        raise HttpError(404, "NOT_FOUND", "Request Path Not Found")

    # --- authentication: built-in database --------------------------------------------------------------------

    def list_users(self, query: dict[str, str], body: Any) -> tuple[int, Any]:
        users = self.state.list_users(query.get("like_user_id"))
        return 200, _page([{"user_id": u.user_id, "is_superuser": u.is_superuser} for u in users], query)

    def get_user(self, query: dict[str, str], body: Any, user_id: str) -> tuple[int, Any]:
        user = self.state.users.get(user_id)
        if user is None:
            raise HttpError(404, "NOT_FOUND", "User not found")
        return 200, {"user_id": user.user_id, "is_superuser": user.is_superuser}

    def create_user(self, query: dict[str, str], body: Any) -> tuple[int, Any]:
        user = self.state.create_user(body)
        if user is None:
            raise HttpError(409, "ALREADY_EXISTS", "User already exists")
        return 201, {"user_id": user.user_id, "is_superuser": user.is_superuser}

    def update_user(self, query: dict[str, str], body: Any, user_id: str) -> tuple[int, Any]:
        user = self.state.update_user(user_id, body)
        if user is None:
            raise HttpError(404, "NOT_FOUND", "User not found")
        return 200, {"user_id": user.user_id, "is_superuser": user.is_superuser}

    def import_users(self, query: dict[str, str], body: Any) -> tuple[int, Any]:
        kind = query.get("type")
        if kind not in ("hash", "plain"):
            raise HttpError(400, "BAD_REQUEST", "type must be hash or plain")
        return 200, self.state.import_users(body, hashed=kind == "hash")

    def delete_user(self, query: dict[str, str], body: Any, user_id: str) -> tuple[int, Any]:
        if not self.state.delete_user(user_id):
            raise HttpError(404, "NOT_FOUND", "User not found")
        return 204, None

    # --- authorization ----------------------------------------------------------------------------------------

    def get_source(self, query: dict[str, str], body: Any) -> tuple[int, Any]:
        return 200, self.state.source()

    def put_source(self, query: dict[str, str], body: Any) -> tuple[int, Any]:
        self.state.set_source(body)
        return 204, None

    def get_settings(self, query: dict[str, str], body: Any) -> tuple[int, Any]:
        return 200, self.state.settings

    def put_settings(self, query: dict[str, str], body: Any) -> tuple[int, Any]:
        return 200, self.state.set_settings(body)

    # --- clients, stats, metrics ------------------------------------------------------------------------------

    def list_clients(self, query: dict[str, str], body: Any) -> tuple[int, Any]:
        like_id, like_user = query.get("like_clientid"), query.get("like_username")
        exact_user = query.get("username")
        sessions = [
            s for s in self.node.connected_sessions()
            if (not like_id or like_id in (s.client_id or ""))
            and (not like_user or like_user in (s.username or ""))
            and (exact_user is None or s.username == exact_user)
        ]
        sessions.sort(key=lambda s: s.client_id or "")
        return 200, _page([self.node.client_info(s) for s in sessions], query)

    def get_client(self, query: dict[str, str], body: Any, client_id: str) -> tuple[int, Any]:
        for session in self.node.connected_sessions():
            if session.client_id == client_id:
                return 200, self.node.client_info(session)
        raise HttpError(404, "CLIENTID_NOT_FOUND", "Client ID not found")

    async def kick(self, query: dict[str, str], body: Any, client_id: str) -> tuple[int, Any]:
        if not await self.node.kick(client_id):
            raise HttpError(404, "CLIENTID_NOT_FOUND", "Client ID not found")
        return 204, None

    def _per_node(self, values: dict[str, int], query: dict[str, str]) -> tuple[int, Any]:
        if query.get("aggregate") == "true":
            return 200, values
        return 200, [{"node": f"emqx@{self.host}", **values}]

    def stats(self, query: dict[str, str], body: Any) -> tuple[int, Any]:
        return self._per_node(self.node.stats(), query)

    def metrics(self, query: dict[str, str], body: Any) -> tuple[int, Any]:
        return self._per_node(dict(self.state.metrics), query)

    def prometheus(self, query: dict[str, str], body: Any) -> str:
        """EMQX's `/prometheus/stats` text: `emqx_connections_count 3`, `emqx_messages_received 10`, ..."""
        lines = []
        for values, kind in ((self.node.stats(), "gauge"), (dict(self.state.metrics), "counter")):
            for key, value in sorted(values.items()):
                name = "emqx_" + key.replace(".", "_")
                lines += [f"# TYPE {name} {kind}", f"{name} {value}"]
        return "\n".join(lines) + "\n"

    # --- dispatch ---------------------------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: Any, raw_body: bytes) -> tuple[int, Any, str]:
        """(status, body, content type) for one request; runs on the HTTP thread, calls on the loop."""
        url = urlsplit(target)
        parts = [unquote(p) for p in url.path.split("/") if p]
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        if parts[:2] != ["api", "v5"]:
            return 404, {"code": "NOT_FOUND", "message": "Request Path Not Found"}, "application/json"
        parts = parts[2:]
        if parts == ["status"] and method == "GET":  # unauthenticated in EMQX too (health checks)
            return 200, f"Node emqx@{self.host} is started\nemqx is running", "text/plain"
        if parts == ["prometheus", "stats"] and method == "GET":  # EMQX's default: no auth for scrapers
            text = asyncio.run_coroutine_threadsafe(self._call(self.prometheus, query, None, ()), self.loop).result(30)
            return 200, text, "text/plain; version=0.0.4"
        try:
            if not self.authorized(headers.get("Authorization")):
                raise HttpError(401, "BAD_API_KEY_OR_SECRET", "Check api_key/api_secret")
            handler, args = self.route(method, parts)
            body = None
            if method in ("POST", "PUT"):
                ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
                if ctype not in JSON_TYPES:
                    raise HttpError(415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json")
                try:
                    body = json.loads(raw_body or b"null")
                except ValueError:
                    raise HttpError(400, "BAD_REQUEST", "Request body is not valid JSON") from None
            status, out = asyncio.run_coroutine_threadsafe(self._call(handler, query, body, args), self.loop).result(30)
            return status, out, "application/json"
        except HttpError as exc:
            return exc.status, {"code": exc.code, "message": exc.message}, "application/json"
        except BadRequest as exc:
            return 400, {"code": "BAD_REQUEST", "message": str(exc)}, "application/json"

    @staticmethod
    async def _call(handler: Callable[..., Any], query: dict[str, str], body: Any, args: tuple[str, ...]) -> Any:
        result = handler(query, body, *args)
        return await result if asyncio.iscoroutine(result) else result


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "EMQX-sim"

    def _serve(self) -> None:
        api: Api = self.server.api  # type: ignore[attr-defined]
        body: Any  # a JSON value, text, or None (no body)
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0:
                raise ValueError(length)
        except ValueError:
            length, status, body, ctype = -1, 400, {"code": "BAD_REQUEST", "message": "bad Content-Length"}, "x"
        try:
            if length >= 0:
                raw = self.rfile.read(length) if length else b""
                status, body, ctype = api.handle(self.command, self.path, self.headers, raw)
            else:
                ctype = "application/json"
                self.close_connection = True
        except Exception:  # an internal failure must not kill the server thread
            log.exception("management API failure on %s %s", self.command, self.path)
            status, body, ctype = 500, {"code": "INTERNAL_ERROR", "message": "internal error"}, "application/json"
        data = b""
        if body is not None and status != 204:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("api %s", format % args)


def serve_api(api: Api, host: str, port: int) -> ThreadingHTTPServer:
    """Bind (raises OSError when the address is taken); the caller runs `serve_forever` in a thread."""
    server = ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True
    server.api = api  # type: ignore[attr-defined]
    return server

