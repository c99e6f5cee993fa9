"""EMQX 5's rules for its HTTP authenticator and authorizer: how the request is built from the configured
template, and how the response decides. One copy, used by the control plane's "test" call
(``deployments.http_auth``) and by the simulated broker (``k8s.simulator.broker``), so what the test
predicts is what the broker does.

- ``GET``: the params, placeholders substituted, become the URL's query string (URL-encoded);
  ``POST``: they become a JSON object body (``content-type: application/json``).
- A placeholder without a value is empty, as in EMQX.
- The decision: a 2xx response whose JSON body carries ``result`` of ``allow``/``deny``/``ignore`` decides
  (with ``is_superuser`` when present); otherwise 2xx allows, 4xx denies, and anything else (5xx, a
  timeout, a connection error) is ``ignore``: the broker moves on to the next authenticator (or, for ACL,
  to ``no_match``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import quote, urlencode

PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
DECISIONS = ("allow", "deny", "ignore")


@dataclass(frozen=True)
class BuiltRequest:
    method: str  # "GET" or "POST"
    url: str
    headers: dict[str, str]
    body: bytes | None


def render_template(template: str, values: dict[str, str]) -> str:
    """Substitutes ``${name}`` placeholders (a missing value is empty, as in EMQX)."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), template)


def build_request(method: str, url: str, headers: dict[str, str], params: dict[str, str],
                  values: dict[str, str]) -> BuiltRequest:
    """The request EMQX sends for one client: ``method`` is ``get`` or ``post`` (any case)."""
    rendered = {name: render_template(template, values) for name, template in params.items()}
    headers = dict(headers)
    if method.upper() == "GET":
        if rendered:
            query = urlencode(rendered, quote_via=quote, safe="")
            base = url.partition("#")[0]
            url = f"{base}{'&' if '?' in base else '?'}{query}"
        return BuiltRequest("GET", url, headers, None)
    headers["content-type"] = "application/json"
    body = json.dumps(rendered, ensure_ascii=False, separators=(",", ":")).encode()
    return BuiltRequest("POST", url.partition("#")[0], headers, body)


def decide(status_code: int, headers: dict[str, str], body: bytes) -> tuple[str, bool | None]:
    """(decision, is_superuser) by the broker's rules, for a response that arrived."""
    if 200 <= status_code < 300:
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        if "json" in content_type.lower() or body[:1] in (b"{",):
            try:
                data = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                data = None
            if isinstance(data, dict) and data.get("result") in DECISIONS:
                superuser = data.get("is_superuser")
                return data["result"], superuser if isinstance(superuser, bool) else None
        return "allow", None
    if 400 <= status_code < 500:
        return "deny", None
    return "ignore", None
