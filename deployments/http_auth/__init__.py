"""Custom HTTP authentication and authorization (ACL) of a deployment: rules, services, rendering.

The same code builds the request for the "test" call and renders the broker's configuration, so what the
test sends is what EMQX sends (EMQX 5 ``backend = http`` authenticator and ``type = http`` authorization
source); how the request is built and decided is told once, in ``services``.

API semantics (documented in the API schema too):

- ``PUT`` replaces the whole configuration, header values included: a header left out is gone.
- Header values are write-only: responses list header *names* only (``"headers": ["Authorization"]``),
  so a GET body cannot be sent back by mistake with masked values stored as real ones.
- Placeholders go in ``params`` values only; the URL must be a fixed address so it can be checked.

Broker configuration: header values are not written into the ConfigMap; they go into the bootstrap
Secret and reach emqx.conf as optional environment substitutions (``${?MQCLOUD_HTTP_AUTHN_HEADER_0}``).
ACL: ``no_match = deny`` (a customer who configured an ACL service wants unknown access refused, also
while the service is down) and ``deny_action = ignore`` (a refused publish is dropped, the client stays).

The package: ``validation`` (pure rules of a request), ``emqx_config`` (the EMQX configuration the worker
renders) and ``services`` (the audited writes and the test call). This module re-exports the names other
modules import, so callers need not change.
"""

from deployments.http_auth.emqx_config import broker_config, header_env_name
from deployments.http_auth.services import (
    PEERED_TEST_REFUSED,
    SLOW_MS,
    BuiltRequest,
    TestResult,
    build_request,
    decide,
    http_auth_delete,
    http_auth_put,
    http_auth_test,
)
from deployments.http_auth.validation import (
    AUTHENTICATION,
    AUTHN_PLACEHOLDERS,
    AUTHORIZATION,
    AUTHZ_PLACEHOLDERS,
    HEADER_NAME,
    KINDS,
    MAX_HEADERS,
    MAX_PARAMS,
    PARAM_NAME,
    PLACEHOLDER,
    PLACEHOLDERS,
    PREFIX,
    RESERVED_HEADERS,
    TIMEOUT_MS_MAX,
    TIMEOUT_MS_MIN,
    HttpRequestSpec,
    check_request_url,
    check_shape,
    request_spec,
    unknown_placeholders,
    validate_request,
)
from k8s.emqx_http import DECISIONS, render_template

__all__ = [
    "AUTHENTICATION", "AUTHN_PLACEHOLDERS", "AUTHORIZATION", "AUTHZ_PLACEHOLDERS", "DECISIONS", "HEADER_NAME",
    "KINDS", "MAX_HEADERS", "MAX_PARAMS", "PARAM_NAME", "PEERED_TEST_REFUSED", "PLACEHOLDER", "PLACEHOLDERS",
    "PREFIX", "RESERVED_HEADERS", "SLOW_MS", "TIMEOUT_MS_MAX", "TIMEOUT_MS_MIN", "BuiltRequest", "HttpRequestSpec",
    "TestResult", "broker_config", "build_request", "check_request_url", "check_shape", "decide",
    "header_env_name", "http_auth_delete", "http_auth_put", "http_auth_test", "render_template", "request_spec",
    "unknown_placeholders", "validate_request",
]
