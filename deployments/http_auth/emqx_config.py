"""Rendering a deployment's HTTP auth settings into EMQX's authentication/authorization configuration.

Imported by the worker (``deployments.provisioning``). EMQX 5 ``backend = http`` authenticator and
``type = http`` authorization source.

Broker configuration: header values are not written into the ConfigMap; they go into the bootstrap
Secret and reach emqx.conf as optional environment substitutions (``${?MQCLOUD_HTTP_AUTHN_HEADER_0}``).
ACL: ``no_match = deny`` (a customer who configured an ACL service wants unknown access refused, also
while the service is down) and ``deny_action = ignore`` (a refused publish is dropped, the client stays).
"""

from __future__ import annotations

import json

from deployments.http_auth.validation import AUTHENTICATION, AUTHORIZATION, PREFIX, HttpRequestSpec, request_spec
from deployments.models import HttpAuthConfig, HttpAuthMethod


# --- the broker's configuration ---------------------------------------------------------------------
def _hocon_string(value: str) -> str:
    # A JSON string is a valid HOCON quoted string, and nothing inside quotes is substituted, so a
    # customer's "${username}" stays the broker's placeholder and cannot reach the environment.
    return json.dumps(value, ensure_ascii=False)


def header_env_name(kind: str, index: int) -> str:
    return f"MQCLOUD_HTTP_{PREFIX[kind].upper()}_HEADER_{index}"


def _request_block(kind: str, spec: HttpRequestSpec, indent: str,
                   secret_env: list[tuple[str, str]]) -> list[str]:
    lines = [
        f"{indent}enable = true",
        f"{indent}method = {spec.method}",
        f"{indent}url = {_hocon_string(spec.url)}",
        f"{indent}headers {{",
    ]
    if spec.method == HttpAuthMethod.POST:
        lines.append(f"{indent}  \"content-type\" = \"application/json\"")
    for index, name in enumerate(sorted(spec.headers)):
        env = header_env_name(kind, index)
        secret_env.append((env, spec.headers[name]))
        lines.append(f"{indent}  {_hocon_string(name.lower())} = ${{?{env}}}")
    lines.append(f"{indent}}}")
    lines.append(f"{indent}body {{")
    lines += [f"{indent}  {_hocon_string(name)} = {_hocon_string(value)}" for name, value in spec.params.items()]
    lines.append(f"{indent}}}")
    lines.append(f"{indent}request_timeout = \"{spec.timeout_ms}ms\"")
    return lines


def broker_config(config: HttpAuthConfig | None) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """(HOCON fragments for emqx.conf, secret environment variables) of a deployment's HTTP auth.

    Nothing when there is no configuration or it is disabled: the broker keeps its default chain.
    """
    if config is None or not config.enabled:
        return (), ()
    secret_env: list[tuple[str, str]] = []
    fragments = []
    authn = request_spec(config, AUTHENTICATION)
    if authn is not None:
        fragments.append("\n".join([
            "authentication = [",
            "  {",
            "    mechanism = password_based",
            "    backend = http",
            *_request_block(AUTHENTICATION, authn, "    ", secret_env),
            "  }",
            "]",
        ]))
    authz = request_spec(config, AUTHORIZATION)
    if authz is not None:
        fragments.append("\n".join([
            "authorization {",
            "  no_match = deny",
            "  deny_action = ignore",
            "  sources = [",
            "    {",
            "      type = http",
            *_request_block(AUTHORIZATION, authz, "      ", secret_env),
            "    }",
            "  ]",
            "}",
        ]))
    return tuple(fragments), tuple(secret_env)
