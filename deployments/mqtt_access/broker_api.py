"""The client of one deployment's broker management API (the EMQX 5 REST API subset the control plane uses).

One client per deployment, authenticated with the bootstrap API key the deployment was created with (HTTP
Basic ``MANAGEMENT_API_KEY:management_api_secret``). Short timeouts: the callers are workers that retry, and
the API never waits on a broker. Errors come in two kinds: ``BrokerUnavailable`` (connection refused, timeout,
5xx: retry later) and ``BrokerRefused`` (a 4xx the broker gave for what we sent: a bug or drift, not retried
blindly). The brokers are our own infrastructure, not customer URLs, so this uses a plain urllib3 pool (as
the metrics scraper does), not the guarded outbound client.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import urllib3
from django.conf import settings

from deployments.models import MANAGEMENT_API_KEY, Deployment

AUTHENTICATOR = "password_based:built_in_database"
PAGE_LIMIT = 1000
IMPORT_BATCH = 5000

_pool = urllib3.PoolManager(num_pools=16, maxsize=8, retries=False)


class BrokerError(Exception):
    def __init__(self, message: str, *, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class BrokerUnavailable(BrokerError):
    """The broker could not be reached or failed (5xx): try again later."""


class BrokerRefused(BrokerError):
    """The broker answered 4xx."""


class BrokerAddressUnknown(BrokerError):
    """There is no address the control plane may call (not retried: the reconciler looks again)."""


def management_url(deployment: Deployment) -> str:
    """Where ``deployment``'s management API listens. In a real cluster, an in-cluster Service's DNS name;
    on the simulated cluster, the deployment's own loopback address (its endpoint host).

    Outside production only loopback addresses are called (``BROKER_MANAGEMENT_LOOPBACK_ONLY``): a test or
    ``make run`` never resolves or reaches any other host, even one a simulated load balancer made up."""
    endpoint = next(iter((deployment.endpoints or {}).values()), "")
    host = endpoint.rsplit(":", 1)[0].strip("[]") if endpoint else ""
    url = settings.BROKER_MANAGEMENT_URL_TEMPLATE.format(namespace=deployment.namespace,
                                                         endpoint_host=host).rstrip("/")
    if settings.BROKER_MANAGEMENT_LOOPBACK_ONLY and not _is_loopback(urlsplit(url).hostname or ""):
        raise BrokerAddressUnknown(f"The broker of {deployment.id} has no loopback address ({url}).")
    return url


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ConnectedClient:
    clientid: str
    username: str | None
    ip_address: str
    connected_at: str
    protocol: str


class BrokerApi:
    def __init__(self, base_url: str, *, key: str, secret: str, timeout_s: float | None = None) -> None:
        self.base_url = base_url.rstrip("/") + "/api/v5"
        self.headers = urllib3.make_headers(basic_auth=f"{key}:{secret}")
        self.headers["Accept"] = "application/json"
        self.timeout = urllib3.Timeout(total=timeout_s or settings.BROKER_API_TIMEOUT_S)

    @classmethod
    def for_deployment(cls, deployment: Deployment) -> BrokerApi:
        return cls(management_url(deployment), key=MANAGEMENT_API_KEY, secret=deployment.management_api_secret)

    # --- transport ----------------------------------------------------------------------------------
    def _call(self, method: str, path: str, *, query: dict[str, Any] | None = None, body: Any = None,
              expect: tuple[int, ...] = (200,)) -> Any:
        url = self.base_url + path + (f"?{urlencode(query)}" if query else "")
        headers = dict(self.headers)
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            response = _pool.request(method, url, body=payload, headers=headers, timeout=self.timeout,
                                     redirect=False)
        except urllib3.exceptions.HTTPError as exc:
            raise BrokerUnavailable(f"{method} {path}: {exc}") from exc
        if response.status in expect:
            if not response.data:
                return None
            try:
                return response.json()
            except ValueError:
                return response.data.decode(errors="replace")
        code, message = "", response.data[:300].decode(errors="replace")
        try:
            answer = response.json()
            code, message = str(answer.get("code", "")), str(answer.get("message", message))
        except (ValueError, AttributeError):
            pass
        error = BrokerUnavailable if response.status >= 500 else BrokerRefused
        raise error(f"{method} {path} answered {response.status}: {code} {message}".strip(),
                    status=response.status, code=code)

    def _pages(self, path: str, query: dict[str, Any]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        page = 1
        while True:
            answer = self._call("GET", path, query={**query, "page": page, "limit": PAGE_LIMIT})
            data = answer.get("data") or []
            rows.extend(data)
            meta = answer.get("meta") or {}
            if not data or not meta.get("hasnext", len(data) == PAGE_LIMIT):
                return rows
            page += 1

    # --- built-in database users ---------------------------------------------------------------------
    def user_ids(self) -> set[str]:
        return {row["user_id"] for row in self._pages(f"/authentication/{AUTHENTICATOR}/users", {})}

    def users_import(self, users: list[dict[str, Any]]) -> None:
        """Creates or overwrites users from ``{user_id, password_hash, salt, is_superuser}`` rows."""
        for start in range(0, len(users), IMPORT_BATCH):
            self._call("POST", f"/authentication/{AUTHENTICATOR}/import_users", query={"type": "hash"},
                       body=users[start:start + IMPORT_BATCH], expect=(200, 204))

    def user_delete(self, user_id: str) -> None:
        """Removes a user; one already gone is fine."""
        try:
            self._call("DELETE", f"/authentication/{AUTHENTICATOR}/users/{quote(user_id, safe='')}",
                       expect=(204,))
        except BrokerRefused as exc:
            if exc.status != 404:
                raise

    # --- authorization -------------------------------------------------------------------------------
    def acl_file(self) -> str:
        return str((self._call("GET", "/authorization/sources/file") or {}).get("rules", ""))

    def acl_file_put(self, rules: str) -> None:
        self._call("PUT", "/authorization/sources/file", body={"type": "file", "enable": True, "rules": rules},
                   expect=(200, 204))

    def authorization_settings(self) -> dict[str, Any]:
        return self._call("GET", "/authorization/settings") or {}

    def authorization_settings_put(self, *, no_match: str) -> None:
        self._call("PUT", "/authorization/settings", expect=(200, 204),
                   body={"no_match": no_match, "deny_action": "ignore", "cache": {"enable": False}})

    # --- clients and counters ------------------------------------------------------------------------
    def clients(self, *, clientid: str = "", username: str = "", limit: int = 100) -> list[ConnectedClient]:
        query: dict[str, Any] = {"page": 1, "limit": limit}
        if clientid:
            query["like_clientid"] = clientid
        if username:
            query["like_username"] = username
        answer = self._call("GET", "/clients", query=query)
        return [ConnectedClient(row["clientid"], row.get("username"), row.get("ip_address", ""),
                                row.get("connected_at", ""), f"{row.get('proto_name', 'MQTT')} "
                                f"{row.get('proto_ver', '')}".strip()) for row in answer.get("data") or []]

    def client_kick(self, clientid: str) -> bool:
        """Disconnects ``clientid`` now; ``False`` when it is not connected."""
        try:
            self._call("DELETE", f"/clients/{quote(clientid, safe='')}", expect=(204,))
        except BrokerRefused as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/stats", query={"aggregate": "true"}) or {}

    def metrics(self) -> dict[str, Any]:
        return self._call("GET", "/metrics", query={"aggregate": "true"}) or {}
