"""A local stand-in for the Azure Resource Manager endpoints ``azure-mgmt-network`` calls for VNet peerings.

Standard library only; serves the unmodified SDK over real HTTP (see ``../shared/TESTING.md``):

- ``PUT …/virtualNetworks/{vnet}/virtualNetworkPeerings/{name}``: 201 with ``provisioningState: Updating``
  and an ``Azure-AsyncOperation`` URL that answers ``InProgress`` once, then ``Succeeded``; the SDK then GETs
  the peering.
- ``GET`` one peering or the list of a VNet; ``DELETE``: 202 with an operation URL, afterwards the peering
  is 404 ``{"error": {"code": "NotFound"}}``; deleting what does not exist is 204.
- ``peeringState`` is computed like Azure does: ``Connected`` once the remote VNet has a peering pointing
  back, ``Initiated`` before, ``Disconnected`` after the remote side went away.

Faults for tests: :meth:`AzureSim.fail_next` (e.g. 429 throttling, 500) and
:meth:`AzureSim.deny_remote_subscription` (403 ``LinkedAuthorizationFailed``, a permanent error).
Run alone with ``python -m deployments.peering.azure_sim --port 8792``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

PEERING_PATH = re.compile(
    r"^(?P<vnet>/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Network/"
    r"virtualNetworks/(?P<vnet_name>[^/]+))/virtualNetworkPeerings(?:/(?P<name>[^/]+))?$",
    re.IGNORECASE,
)
OPERATION_PATH = re.compile(r"^/providers/Microsoft\.Network/locations/sim/operations/(?P<op>[^/]+)$", re.IGNORECASE)


@dataclass
class _Peering:
    id: str
    name: str
    vnet_id: str
    remote_id: str
    properties: dict
    provisioning_state: str = "Updating"
    was_connected: bool = False


@dataclass
class _Operation:
    polls_left: int
    on_done: object = None  # a callable run when the operation succeeds
    status: str = "InProgress"


@dataclass
class _Fault:
    method: str
    status: int
    code: str
    message: str
    remaining: int


@dataclass
class _State:
    peerings: dict[str, _Peering] = field(default_factory=dict)
    operations: dict[str, _Operation] = field(default_factory=dict)
    faults: list[_Fault] = field(default_factory=list)
    denied_subscriptions: set[str] = field(default_factory=set)
    requests: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)


def _key(resource_id: str) -> str:
    return resource_id.rstrip("/").lower()


class AzureSim:
    """The server; use as a context manager (``with AzureSim() as sim: sim.url``) or ``start()``/``stop()``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, operation_polls: int = 1) -> None:
        self.state = _State()
        self.operation_polls = operation_polls
        self._ids = itertools.count(1)
        handler = type("Handler", (_Handler,), {"sim": self})
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> AzureSim:
        self._thread = threading.Thread(target=self.server.serve_forever, name="azure-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> AzureSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- test controls ----------------------------------------------------------------------------
    def fail_next(self, method: str, status: int, *, code: str = "", message: str = "", times: int = 1) -> None:
        default_code = {429: "TooManyRequests", 500: "InternalServerError", 503: "ServiceUnavailable"}
        with self.state.lock:
            self.state.faults.append(_Fault(method.upper(), status, code or default_code.get(status, "Error"),
                                            message or f"Simulated {status}.", times))

    def deny_remote_subscription(self, subscription_id: str) -> None:
        with self.state.lock:
            self.state.denied_subscriptions.add(subscription_id.lower())

    def reset(self) -> None:
        with self.state.lock:
            self.state.peerings.clear()
            self.state.operations.clear()
            self.state.faults.clear()
            self.state.denied_subscriptions.clear()
            self.state.requests.clear()

    def peering(self, resource_id: str) -> dict | None:
        with self.state.lock:
            peering = self.state.peerings.get(_key(resource_id))
            return None if peering is None else self.render(peering)

    # --- the model --------------------------------------------------------------------------------
    def peering_state(self, peering: _Peering) -> str:
        reverse = any(_key(other.vnet_id) == _key(peering.remote_id) and _key(other.remote_id) == _key(peering.vnet_id)
                      for other in self.state.peerings.values())
        if reverse:
            peering.was_connected = True
            return "Connected"
        return "Disconnected" if peering.was_connected else "Initiated"

    def render(self, peering: _Peering) -> dict:
        properties = dict(peering.properties)
        properties.update({
            "provisioningState": peering.provisioning_state,
            "peeringState": self.peering_state(peering),
            "peeringSyncLevel": "FullyInSync",
            "remoteVirtualNetwork": {"id": peering.remote_id},
        })
        return {"id": peering.id, "name": peering.name, "etag": f'W/"{uuid.uuid4()}"',
                "type": "Microsoft.Network/virtualNetworks/virtualNetworkPeerings", "properties": properties}

    def new_operation(self, on_done=None) -> str:
        op_id = f"op-{next(self._ids)}"
        self.state.operations[op_id] = _Operation(polls_left=self.operation_polls, on_done=on_done)
        return f"{self.url}/providers/Microsoft.Network/locations/sim/operations/{op_id}?api-version=2024-05-01"


class _Handler(BaseHTTPRequestHandler):
    sim: AzureSim
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass

    # --- plumbing ---------------------------------------------------------------------------------
    def _send(self, status: int, body: dict | None = None, headers: dict[str, str] | None = None) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _error(self, status: int, code: str, message: str) -> None:
        self._send(status, {"error": {"code": code, "message": message}})

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else {}

    def _handle(self, method: str) -> None:
        path = urlsplit(self.path).path
        body = self._body() if method == "PUT" else {}
        sim = self.sim
        with sim.state.lock:
            sim.state.requests.append((method, path))
            if not self.headers.get("Authorization", "").startswith("Bearer "):
                return self._error(401, "AuthenticationFailed", "Authentication failed: no bearer token.")
            for fault in sim.state.faults:
                if fault.method in (method, "*") and fault.remaining > 0 and not OPERATION_PATH.match(path):
                    fault.remaining -= 1
                    return self._error(fault.status, fault.code, fault.message)
            if match := OPERATION_PATH.match(path):
                return self._operation(match["op"])
            match = PEERING_PATH.match(path)
            if match is None:
                return self._error(404, "NotFound", f"No route {method} {path} in the Azure stand-in.")
            if match["name"] is None:
                if method != "GET":
                    return self._error(405, "MethodNotAllowed", "Only GET on the collection.")
                vnet = _key(match["vnet"])
                items = [sim.render(p) for p in sim.state.peerings.values() if _key(p.vnet_id) == vnet]
                return self._send(200, {"value": items})
            resource_id = path
            if method == "GET":
                peering = sim.state.peerings.get(_key(resource_id))
                if peering is None:
                    return self._error(404, "NotFound", f"Resource {resource_id} not found.")
                return self._send(200, sim.render(peering))
            if method == "PUT":
                return self._put(match, resource_id, body)
            if method == "DELETE":
                return self._delete(resource_id)
        return self._error(405, "MethodNotAllowed", method)

    def _put(self, match: re.Match, resource_id: str, body: dict) -> None:
        sim = self.sim
        properties = dict(body.get("properties") or {})
        remote = (properties.pop("remoteVirtualNetwork", None) or {}).get("id") or ""
        remote_match = re.match(r"^/subscriptions/([^/]+)/resourceGroups/[^/]+/providers/Microsoft\.Network/"
                                r"virtualNetworks/[^/]+$", remote, re.IGNORECASE)
        if not remote_match:
            return self._error(400, "InvalidRequestFormat", "remoteVirtualNetwork.id is missing or not a VNet id.")
        if remote_match.group(1).lower() in sim.state.denied_subscriptions:
            return self._error(403, "LinkedAuthorizationFailed",
                               f"The client has permission to perform action 'Microsoft.Network/virtualNetworks/peer/"
                               f"action' on scope '{resource_id}', however it does not have permission to perform "
                               f"action 'Microsoft.Network/virtualNetworks/peer/action' on the linked scope(s) "
                               f"'{remote}'.")
        for key in ("provisioningState", "peeringState", "peeringSyncLevel"):
            properties.pop(key, None)
        existing = sim.state.peerings.get(_key(resource_id))
        if existing is not None:
            existing.properties = properties
            existing.remote_id = remote
            existing.provisioning_state = "Updating"
            peering, status = existing, 200
        else:
            peering = _Peering(id=resource_id, name=match["name"], vnet_id=match["vnet"], remote_id=remote,
                               properties=properties)
            sim.state.peerings[_key(resource_id)] = peering
            status = 201

        def done() -> None:
            peering.provisioning_state = "Succeeded"

        operation = sim.new_operation(done)
        self._send(status, sim.render(peering), {"Azure-AsyncOperation": operation})

    def _delete(self, resource_id: str) -> None:
        sim = self.sim
        if _key(resource_id) not in sim.state.peerings:
            return self._send(204)
        sim.state.peerings[_key(resource_id)].provisioning_state = "Deleting"

        def done() -> None:
            sim.state.peerings.pop(_key(resource_id), None)

        operation = sim.new_operation(done)
        self._send(202, None, {"Azure-AsyncOperation": operation, "Location": operation})

    def _operation(self, op_id: str) -> None:
        operation = self.sim.state.operations.get(op_id)
        if operation is None:
            return self._error(404, "NotFound", f"No operation {op_id}.")
        if operation.status == "InProgress":
            if operation.polls_left > 0:
                operation.polls_left -= 1
            else:
                operation.status = "Succeeded"
                if callable(operation.on_done):
                    operation.on_done()
        return self._send(200, {"status": operation.status, "name": op_id})

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle("GET")

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8792)
    args = parser.parse_args()
    sim = AzureSim(args.host, args.port)
    print(f"Azure Resource Manager stand-in on {sim.url}", flush=True)
    try:
        sim.server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
