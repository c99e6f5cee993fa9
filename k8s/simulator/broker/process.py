"""Start and stop a broker process (`python -m k8s.simulator.broker`) from the simulator or a test.

`start_broker` waits for the `ready` line and returns a `BrokerProcess`; a process that exits first raises
`BrokerStartError` with its stderr (`.address_in_use` tells a taken address from other failures).
`start_broker_on_free_address` picks random 127.77.x.y addresses until one is free, so parallel runs can all
use EMQX's standard ports.
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import json
import os
import random
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parents[3]


class BrokerStartError(RuntimeError):
    def __init__(self, message: str, returncode: int | None = None, stderr: str = "") -> None:
        super().__init__(f"{message}: {stderr.strip()}" if stderr.strip() else message)
        self.returncode, self.stderr = returncode, stderr

    @property
    def address_in_use(self) -> bool:
        return "address already in use" in self.stderr.lower()


@dataclass
class BrokerProcess:
    proc: subprocess.Popen[bytes]
    host: str
    ports: dict[str, int]
    bootstrap_file: str = ""
    log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def mqtt_port(self) -> int:
        return self.ports["mqtt"]

    @property
    def api_port(self) -> int:
        return self.ports["api"]

    @property
    def api_url(self) -> str:
        """Base of the management API, e.g. `http://127.77.0.5:18083/api/v5`."""
        return f"http://{self.host}:{self.api_port}/api/v5"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def request(self, method: str, path: str, body: Any = None, timeout: float = 10.0,
                auth: tuple[str, str] | None | bool = True) -> tuple[int, Any]:
        """(status, JSON or text) of a management API call, e.g. `broker.request("GET", "/stats?aggregate=true")`.
        ``auth``: True for the first key of the bootstrap file, a (key, secret) pair, or None for no credentials."""
        if auth is True:
            key, _, rest = next(line for line in Path(self.bootstrap_file).read_text().splitlines()
                                if line.strip() and not line.startswith("#")).strip().partition(":")
            auth = (key, rest.split(":")[0])
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.api_url + path, data=data, method=method)  # noqa: S310 - loopback
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if isinstance(auth, tuple):
            req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
                status, raw, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            status, raw, ctype = exc.code, exc.read(), exc.headers.get("Content-Type", "")
        if not raw:
            return status, None
        return status, json.loads(raw) if "json" in ctype else raw.decode()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def logs(self) -> str:
        if self.log is None:
            return ""
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, then SIGKILL after `timeout`; the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        if self.proc.stdout:
            self.proc.stdout.close()
        if self.log is not None:
            self.log.close()
            self.log = None
        return self.proc.returncode

    def __enter__(self) -> BrokerProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_broker(
    host: str,
    *,
    bootstrap_file: str | os.PathLike[str],
    mqtt_port: int = 1883,
    ws_port: int = 8083,
    mqtts_port: int = 8883,
    wss_port: int = 8084,
    api_port: int = 18083,
    certfile: str | os.PathLike[str] | None = None,
    keyfile: str | os.PathLike[str] | None = None,
    state_dir: str | os.PathLike[str] | None = None,
    http_authenticator: str | os.PathLike[str] | None = None,
    allow_anonymous: bool = False,
    log_level: str = "WARNING",
    log_file: str | os.PathLike[str] | None = None,
    timeout: float = 15.0,
    python: str = sys.executable,
) -> BrokerProcess:
    """Start a broker on `host` and wait until it listens. Its stderr goes to `log_file` (or a temporary file
    read by `BrokerProcess.logs()`)."""
    cmd = [
        python, "-m", "k8s.simulator.broker", "--host", host, "--api-bootstrap-file", str(bootstrap_file),
        "--mqtt-port", str(mqtt_port), "--ws-port", str(ws_port), "--api-port", str(api_port),
        "--mqtts-port", str(mqtts_port), "--wss-port", str(wss_port), "--log-level", log_level,
    ]
    if certfile and keyfile:
        cmd += ["--certfile", str(certfile), "--keyfile", str(keyfile)]
    if state_dir:
        cmd += ["--state-dir", str(state_dir)]
    if http_authenticator:
        cmd += ["--http-authenticator", str(http_authenticator)]
    if allow_anonymous:
        cmd.append("--allow-anonymous")
    log: IO[bytes] = open(log_file, "w+b") if log_file else tempfile.TemporaryFile()  # noqa: SIM115
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT,  # noqa: S603 - our own module, fixed arguments
                            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                            env=env, preexec_fn=_die_with_parent)
    try:
        line = _wait_ready(proc, timeout)
    except BrokerStartError as exc:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()
        log.seek(0)
        stderr = log.read().decode(errors="replace")
        log.close()
        raise BrokerStartError(str(exc), proc.returncode, stderr) from None
    ports: dict[str, int] = {}  # only the listeners it has: mqtt, api, ws, and mqtts/wss with TLS
    for token in line.split()[2:]:
        name, _, value = token.partition("=")
        if value.isdigit():
            ports[name] = int(value)
    return BrokerProcess(proc, host, ports, str(bootstrap_file), log)


def _die_with_parent() -> None:
    """In the child before exec: a broker whose starter died (a simulator killed with SIGKILL) gets SIGTERM
    instead of living on with its addresses taken. Linux only; elsewhere nothing happens. Linux sends it when
    the starting *thread* ends: start brokers from a thread that outlives them (the fleet's, a test's)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _wait_ready(proc: subprocess.Popen[bytes], timeout: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrokerStartError(f"broker did not get ready within {timeout}s")
            if not sel.select(left):
                continue
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                proc.wait(5)
                raise BrokerStartError(f"broker exited with code {proc.returncode}")
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                line = raw.decode(errors="replace").strip()
                if line.startswith("ready "):
                    return line


def random_loopback(prefix: str = "127.77") -> str:
    """A random address in `prefix`.0.0/16 (never 127.0.0.1, whose 1883 belongs to the system's mosquitto)."""
    return f"{prefix}.{random.randint(0, 255)}.{random.randint(2, 254)}"  # noqa: S311 - not security


def start_broker_on_free_address(*, attempts: int = 20, prefix: str = "127.77", **kwargs: Any) -> BrokerProcess:
    """`start_broker` on random loopback addresses until one's ports are free."""
    last: BrokerStartError | None = None
    for _ in range(attempts):
        try:
            return start_broker(random_loopback(prefix), **kwargs)
        except BrokerStartError as exc:
            if not exc.address_in_use:
                raise
            last = exc
    raise BrokerStartError(f"no free address after {attempts} attempts") from last
