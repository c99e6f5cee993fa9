"""What a broker pod of the simulated cluster would see, and so what its stand-in broker runs with.

A pod's environment and files are resolved from its StatefulSet's pod template and the namespace's ConfigMaps
and Secrets, as the kubelet does (``value`` and ``secretKeyRef``/``configMapKeyRef`` variables; ``configMap``
and ``secret`` volumes mounted whole or by ``subPath``; an ``optional`` source that is missing is skipped).
``emqx.conf`` is then read as EMQX reads it: HOCON (pyhocon), with ``${?VAR}`` taken from that environment.
From it the stand-in takes the management API keys of ``api_key.bootstrap_file``, the TLS listener's
certificate and key files, and the HTTP authenticator of the authentication chain. So the simulated broker
runs what the renderer wrote; a setting the renderer forgot is missing here too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import posixpath
import re
from dataclasses import asdict, dataclass
from typing import Any

from pyhocon import ConfigFactory, ConfigTree
from pyhocon.exceptions import ConfigException

from .broker.http_authn import HttpAuthenticator
from .resources import BY_PLURAL

CONFIGMAPS = BY_PLURAL["configmaps"]
SECRETS = BY_PLURAL["secrets"]
EMQX_CONF = "/opt/emqx/etc/emqx.conf"
_OPTIONAL_ENV = re.compile(r"\$\{\?([A-Za-z_][A-Za-z0-9_]*)\}")


class PodViewError(ValueError):
    """The pod could not start as specified (a missing ConfigMap or key, an unreadable emqx.conf)."""


@dataclass(frozen=True)
class BrokerPlan:
    """What a namespace's broker process is started with; a changed plan restarts it."""

    api_keys: str  # the bootstrap file's content
    certfile: str | None = None  # PEM, the TLS listeners' certificate (chain)
    keyfile: str | None = None
    http_authenticator: HttpAuthenticator | None = None

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


def decoded(secret: dict[str, Any]) -> dict[str, str]:
    """A Secret's values in clear (``data`` is base64; the simulator folds ``stringData`` into it)."""
    return {key: base64.b64decode(value).decode("utf-8", "replace")
            for key, value in (secret.get("data") or {}).items()}


class PodView:
    """One pod template's environment and files against the objects of its namespace (``objects``: kind ->
    name -> object, with Secrets already ``decoded``-able)."""

    def __init__(self, template_spec: dict[str, Any], config_maps: dict[str, dict[str, Any]],
                 secrets: dict[str, dict[str, Any]]) -> None:
        self.spec = template_spec
        self.config_maps = {name: dict(obj.get("data") or {}) for name, obj in config_maps.items()}
        self.secrets = {name: decoded(obj) for name, obj in secrets.items()}
        self.container = (template_spec.get("containers") or [{}])[0]

    def _source(self, kind: str, name: str, key: str, optional: bool) -> str | None:
        data = (self.config_maps if kind == "configMap" else self.secrets).get(name)
        if data is None or key not in data:
            if optional:
                return None
            raise PodViewError(f"{kind} {name!r} has no key {key!r}" if data is not None
                               else f"{kind} {name!r} not found")
        return data[key]

    def environment(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for var in self.container.get("env") or []:
            if "value" in var:
                env[var["name"]] = str(var["value"])
                continue
            ref = var.get("valueFrom") or {}
            for kind, ref_key in (("secret", "secretKeyRef"), ("configMap", "configMapKeyRef")):
                if ref_key in ref:
                    found = self._source(kind, ref[ref_key]["name"], ref[ref_key]["key"],
                                         bool(ref[ref_key].get("optional")))
                    if found is not None:
                        env[var["name"]] = found
        return env

    def files(self) -> dict[str, str]:
        """Path -> content of every file mounted from a ConfigMap or Secret."""
        volumes = {v["name"]: v for v in self.spec.get("volumes") or []}
        files: dict[str, str] = {}
        for mount in self.container.get("volumeMounts") or []:
            volume = volumes.get(mount["name"]) or {}
            kind = "configMap" if "configMap" in volume else "secret" if "secret" in volume else None
            if kind is None:
                continue  # data volumes: the broker's own state
            source = volume[kind]
            name = source.get("name") if kind == "configMap" else source.get("secretName")
            optional = bool(source.get("optional"))
            data = (self.config_maps if kind == "configMap" else self.secrets).get(name)
            if data is None:
                if optional:
                    continue
                raise PodViewError(f"{kind} {name!r} not found")
            # Without items every key is a file named after it; with items only those, at their paths.
            items = {i["key"]: i["path"] for i in source.get("items") or []} or {k: k for k in data}
            if mount.get("subPath"):
                key = next((k for k, path in items.items() if path == mount["subPath"]), None)
                if key is None or key not in data:
                    raise PodViewError(f"{kind} {name!r} has nothing at {mount['subPath']!r}")
                files[mount["mountPath"]] = data[key]
            else:
                for key, path in items.items():
                    if key in data:
                        files[posixpath.join(mount["mountPath"], path)] = data[key]
                    elif not optional:
                        raise PodViewError(f"{kind} {name!r} has no key {key!r}")
        return files

    def emqx_config(self) -> ConfigTree:
        files = self.files()
        if EMQX_CONF not in files:
            raise PodViewError(f"nothing is mounted at {EMQX_CONF}")
        env = self.environment()
        # EMQX substitutes ${?VAR} from its environment; an unset one leaves the key out. Values are inserted
        # as JSON strings (valid HOCON), so nothing in a secret can change the structure around it.
        text = _OPTIONAL_ENV.sub(lambda m: json.dumps(env[m.group(1)]) if m.group(1) in env else "null",
                                 files[EMQX_CONF])
        try:
            return ConfigFactory.parse_string(text, resolve=True)
        except (ConfigException, ValueError) as exc:  # pyparsing's errors are ValueErrors
            raise PodViewError(f"emqx.conf does not parse: {exc}") from exc

    def broker_plan(self) -> BrokerPlan:
        config, files = self.emqx_config(), self.files()

        def mounted(path: str | None, what: str) -> str | None:
            if not path:
                return None
            if path not in files:
                raise PodViewError(f"{what} {path!r} is not mounted")
            return files[path]

        api_keys = mounted(config.get_string("api_key.bootstrap_file", None), "api_key.bootstrap_file")
        if not api_keys:
            raise PodViewError("emqx.conf sets no api_key.bootstrap_file: the control plane could not log in")
        ssl = config.get_config("listeners.ssl.default.ssl_options", ConfigTree())
        certfile = keyfile = None
        if ssl.get_string("certfile", None) and ssl.get_string("certfile") in files:
            # A certificate not mounted yet (an optional Secret still missing) leaves mqtts off, as EMQX
            # would refuse to start that listener; the broker is restarted when the files appear.
            certfile = files[ssl.get_string("certfile")]
            keyfile = mounted(ssl.get_string("keyfile", None), "listeners.ssl.default.ssl_options.keyfile")
        return BrokerPlan(api_keys=api_keys, certfile=certfile, keyfile=keyfile,
                          http_authenticator=_http_authenticator(config))


def _milliseconds(value: Any, default: int = 5000) -> int:
    text = str(value or "").strip()
    match = re.fullmatch(r"(\d+)\s*(ms|s)?", text)
    if not match:
        return default
    return int(match.group(1)) * (1000 if match.group(2) == "s" else 1)


def _http_authenticator(config: ConfigTree) -> HttpAuthenticator | None:
    for entry in config.get_list("authentication", []):
        if not isinstance(entry, ConfigTree) or entry.get_string("backend", "") != "http":
            continue
        if not entry.get_bool("enable", True):
            continue
        headers = {str(k): str(v) for k, v in entry.get_config("headers", ConfigTree()).items() if v is not None}
        params = {str(k): str(v) for k, v in entry.get_config("body", ConfigTree()).items()}
        return HttpAuthenticator(method=entry.get_string("method", "post").lower(), url=entry.get_string("url"),
                                 headers=headers, params=params,
                                 timeout_ms=_milliseconds(entry.get("request_timeout", None)))
    return None
