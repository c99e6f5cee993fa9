"""Rendering a deployment's access chain into EMQX's authentication/authorization configuration: the
built-in database and the ACL file source always, the HTTP authenticator and authorizer when configured.

Imported by the worker (``deployments.provisioning``). EMQX 5 ``backend = http`` authenticator and
``type = http`` authorization source.

Broker configuration: header values are not written into the ConfigMap; they go into the bootstrap
Secret and reach emqx.conf as optional environment substitutions (``${?MQCLOUD_HTTP_AUTHN_HEADER_0}``).
ACL: ``no_match = deny`` until the management API sets the deployment's own, and ``deny_action = ignore``
(a refused publish is dropped, the client stays).
"""

from __future__ import annotations

import json

from deployments.http_auth.validation import AUTHENTICATION, AUTHORIZATION, PREFIX, HttpRequestSpec, request_spec
from deployments.models import HttpAuthConfig, HttpAuthMethod
from deployments.mqtt_access.hashing import PBKDF2_ITERATIONS, PBKDF2_KEY_BYTES
from k8s.render import CONFIG_FILES_DIR, SECRET_FILES_DIR


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


#: The built-in database authenticator: the deployment's users, hashed as ``deployments.mqtt_access.hashing``.
BUILT_IN_AUTHENTICATOR = (
    "mechanism = password_based",
    "backend = built_in_database",
    "user_id_type = username",
    f"password_hash_algorithm {{ name = pbkdf2, mac_fun = sha256, iterations = {PBKDF2_ITERATIONS}, "
    f"dk_length = {PBKDF2_KEY_BYTES} }}",
)
ACL_FILE = "acl.conf"
API_KEYS_FILE = "api_keys"


def _entry(lines: list[str] | tuple[str, ...], indent: str) -> list[str]:
    return [f"{indent}{{", *(f"{indent}  {line}" for line in lines), f"{indent}}}"]


def broker_config(config: HttpAuthConfig | None) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """(HOCON fragments for emqx.conf, secret environment variables): the deployment's access chain.

    Authentication: the built-in database, then the HTTP authenticator when configured and enabled; a client
    no step allows (anonymous ones included) is refused. Authorization: the ACL rules (the ``file`` source,
    written through the management API), then the HTTP authorizer when configured, then ``no_match`` (also
    set through the API). No authorization cache, so a changed rule applies to the next publish.
    """
    secret_env: list[tuple[str, str]] = []
    enabled = config is not None and config.enabled
    authn = request_spec(config, AUTHENTICATION) if enabled else None
    authz = request_spec(config, AUTHORIZATION) if enabled else None
    authenticators = _entry(BUILT_IN_AUTHENTICATOR, "  ")
    if authn is not None:
        authenticators += _entry(["mechanism = password_based", "backend = http",
                                  *_request_block(AUTHENTICATION, authn, "", secret_env)], "  ")
    sources = _entry(["type = file", "enable = true", f"path = {_hocon_string(f'{CONFIG_FILES_DIR}/{ACL_FILE}')}"],
                     "    ")
    if authz is not None:
        sources += _entry(["type = http", *_request_block(AUTHORIZATION, authz, "", secret_env)], "    ")
    fragments = (
        "\n".join(["authentication = [", *authenticators, "]"]),
        "\n".join(["authorization {", "  no_match = deny", "  deny_action = ignore", "  cache { enable = false }",
                   "  sources = [", *sources, "  ]", "}"]),
        f"api_key.bootstrap_file = {_hocon_string(f'{SECRET_FILES_DIR}/{API_KEYS_FILE}')}",
    )
    return fragments, tuple(secret_env)
