"""EMQX's HTTP authenticator, for the simulated broker: the request and the decision by EMQX's rules
(``k8s.emqx_http``, shared with the control plane's "test" call).

The simulated broker runs on a developer's machine (``make run``, the tests), where nothing may leave the
machine: only loopback URLs are called. Any other address is not contacted and counts as ``ignore``, as an
unreachable service does for EMQX, and the broker's log says why.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from k8s.emqx_http import build_request, decide

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpAuthenticator:
    method: str
    url: str
    headers: dict[str, str]
    params: dict[str, str]
    timeout_ms: int = 5000


def read_http_authenticator(path: str | Path) -> HttpAuthenticator:
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        raise ValueError(f"{path}: not an HTTP authenticator (an object with a url)")
    return HttpAuthenticator(method=str(data.get("method", "post")), url=data["url"],
                             headers={str(k): str(v) for k, v in (data.get("headers") or {}).items()},
                             params={str(k): str(v) for k, v in (data.get("params") or {}).items()},
                             timeout_ms=int(data.get("timeout_ms", 5000)))


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _call(config: HttpAuthenticator, values: dict[str, str]) -> tuple[str, bool | None]:
    built = build_request(config.method, config.url, config.headers, config.params, values)
    if not is_loopback_url(built.url):
        log.warning("HTTP authenticator %s not called: the simulated broker only calls loopback addresses",
                    built.url)
        return "ignore", None
    request = urllib.request.Request(built.url, data=built.body, method=built.method,  # noqa: S310 - loopback
                                     headers=built.headers)
    try:
        with urllib.request.urlopen(request, timeout=config.timeout_ms / 1000) as response:  # noqa: S310
            return decide(response.status, dict(response.headers.items()), response.read(64 * 1024))
    except urllib.error.HTTPError as exc:
        return decide(exc.code, dict(exc.headers.items()), exc.read(64 * 1024))
    except (OSError, ValueError) as exc:  # refused, timed out, a malformed URL: the service is not there
        log.warning("HTTP authenticator %s failed: %s", built.url, exc)
        return "ignore", None


async def http_authenticate(config: HttpAuthenticator, values: dict[str, Any]) -> tuple[str, bool | None]:
    """(decision, is_superuser) for one CONNECT; the blocking call runs off the event loop."""
    texts = {k: "" if v is None else v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
             for k, v in values.items()}
    return await asyncio.get_running_loop().run_in_executor(None, _call, config, texts)
