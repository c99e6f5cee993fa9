"""The product's processes on one machine, everything on loopback: `make run` (bin/run_embedded.py), `make
run-production` (bin/run_production.py) and the production-like tests (tests/test_production_run.py) start them
through these pieces. Django-free: it only starts and stops processes.
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

from controlplane.queues import QUEUES

ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINT = ROOT / "bin" / "container-entrypoint"


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (the kernel's pick); others run servers on this machine too."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex((host, port)) != 0


@dataclass(frozen=True)
class Simulators:
    """The simulated Kubernetes cluster every region's deployments go to (with a real MQTT broker per running
    deployment) and the simulated clouds of VPC peering (moto's server for AWS, our Azure stand-in)."""

    var: Path
    cluster_port: int
    aws_port: int
    azure_port: int
    # Seconds a new pod stays unready; None: the simulator's default (2 s, like a small real broker).
    ready_delay_s: float | None = None

    @property
    def networks_file(self) -> Path:
        return self.var / "cloudsim-networks.json"

    def commands(self, python: str = sys.executable) -> dict[str, list[str]]:
        cluster = [python, "-m", "k8s.simulator", "--port", str(self.cluster_port),
                   "--kubeconfig", str(self.var / "kubeconfig-sim.yaml"),
                   # A real MQTT broker for every running deployment, on its endpoint's loopback address.
                   "--brokers-dir", str(self.var / "sim-brokers")]
        if self.ready_delay_s is not None:
            cluster += ["--ready-delay", str(self.ready_delay_s)]
        clouds = [python, "-m", "deployments.cloudsim", "--aws-port", str(self.aws_port),
                  "--azure-port", str(self.azure_port), "--networks-file", str(self.networks_file)]
        return {"cluster": cluster, "clouds": clouds}

    def env(self) -> dict[str, str]:
        """The settings that point the control plane at them."""
        return {
            "KUBERNETES_SIMULATOR_URL": f"http://127.0.0.1:{self.cluster_port}",
            "PEERING_AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.aws_port}",
            "PEERING_AZURE_ENDPOINT_URL": f"http://127.0.0.1:{self.azure_port}",
            "PEERING_PLATFORM_NETWORKS_FILE": str(self.networks_file),
        }


def production_commands(*, python: str = sys.executable, queues: tuple[str, ...] = QUEUES,
                        beats: int = 1) -> dict[str, list[str]]:
    """The image's roles as production runs them, through its entrypoint: gunicorn, one Celery worker per queue
    (like one worker Deployment per queue) and ``beats`` beat replicas (RedBeat lets one schedule)."""
    entry = [python, str(ENTRYPOINT)]
    commands = {"web": [*entry, "web"]}
    commands.update({f"worker-{queue}": [*entry, "worker", queue] for queue in queues})
    commands.update({f"beat-{number}": [*entry, "beat"] for number in range(1, beats + 1)})
    return commands


def run_entrypoint(role: str, *args: str, env: Mapping[str, str], python: str = sys.executable) -> None:
    """A one-off command of the image (``migrate``, ``sync-catalog``, ``manage ...``), to completion."""
    subprocess.run([python, str(ENTRYPOINT), role, *args], cwd=ROOT, env=dict(env), check=True)  # noqa: S603


def wait_until_serving(url: str, *, timeout_s: float = 90.0, process: subprocess.Popen | None = None) -> None:
    """Polls ``url`` (loopback) until it answers 200; fails early when ``process`` has exited."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own loopback URL
                if response.status == 200:
                    return
                last = str(response.status)
        except urllib.error.HTTPError as exc:
            last = str(exc.code)
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within {timeout_s:.0f} s (last: {last})")


class ProcessGroup:
    """Named child processes. Each runs in a session of its own, so a role can be stopped or killed together
    with the children it forked (a Celery worker's pool, gunicorn's workers), the way a container's processes
    all end with its PID 1. With ``log_dir`` each writes to ``<log_dir>/<name>.log``; without, to our output."""

    def __init__(self, *, env: Mapping[str, str], log_dir: Path | None = None) -> None:
        self.env = dict(env)
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen] = {}
        self.commands: dict[str, list[str]] = {}
        self._logs: dict[str, IO[bytes]] = {}

    def start(self, name: str, command: list[str]) -> subprocess.Popen:
        if name in self.processes and self.processes[name].poll() is None:
            raise RuntimeError(f"{name} is already running")
        output: IO[bytes] | None = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            output = self._logs.get(name) or (self.log_dir / f"{name}.log").open("ab")
            self._logs[name] = output
        self.commands[name] = command
        # Our own commands (production_commands, Simulators.commands), argument lists, never a shell string.
        self.processes[name] = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=output,  # noqa: S603
                                                stderr=subprocess.STDOUT if output else None,
                                                start_new_session=True)
        return self.processes[name]

    def start_all(self, commands: Mapping[str, list[str]]) -> None:
        for name, command in commands.items():
            self.start(name, command)

    def restart(self, name: str) -> subprocess.Popen:
        """Starts ``name`` again with its command, as a kubelet restarts a container that died."""
        return self.start(name, self.commands[name])

    def kill(self, name: str, sig: int = signal.SIGKILL, *, with_children: bool = False) -> None:
        process = self.processes[name]
        if with_children:
            os.killpg(process.pid, sig)  # its session's process group: itself and what it forked
        else:
            os.kill(process.pid, sig)

    def stop(self, name: str, timeout_s: float = 15.0) -> None:
        """SIGTERM (a warm shutdown: Celery hands its unacknowledged messages back), SIGKILL after ``timeout_s``;
        then whatever it forked that still runs."""
        process = self.processes[name]
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._kill_leftovers(process)

    def stop_all(self, timeout_s: float = 15.0) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + timeout_s
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            self._kill_leftovers(process)
        for output in self._logs.values():
            output.close()
        self._logs.clear()

    @staticmethod
    def _kill_leftovers(process: subprocess.Popen) -> None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # the group is empty: nothing it forked outlived it

    def log(self, name: str) -> str:
        if self.log_dir is None:
            return ""
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def supervise(self) -> int:
        """Until Ctrl-C or SIGTERM, or until one process exits (then the others are stopped too); the exit code."""
        stopping = False

        def stop(*_: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        try:
            while not stopping:
                for name, process in self.processes.items():
                    if process.poll() is not None:
                        print(f"{name} exited with {process.returncode}; stopping the rest", file=sys.stderr)
                        exit_code = process.returncode or 1
                        stopping = True
                time.sleep(0.5)
        finally:
            self.stop_all(timeout_s=10)
        return exit_code


class RedisServer:
    """Our own ``redis-server`` on a loopback port, persisting to an append-only file (AOF) only: what production's
    Redis must do so that queued tasks, the beat lock and rate counters survive its restart (docs/operations.md).
    No RDB snapshots, so a restart that keeps the queues proves the AOF does."""

    def __init__(self, data_dir: Path, port: int | None = None, *, binary: str = "/usr/bin/redis-server") -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.binary = binary
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(  # noqa: S603 - a fixed argument list
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.data_dir),
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--protected-mode", "yes",
             "--logfile", str(self.data_dir / "redis.log")],
            cwd=self.data_dir, start_new_session=True)
        deadline = time.monotonic() + 20
        while port_is_free("127.0.0.1", self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start; see {self.data_dir / 'redis.log'}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """A clean shutdown (SIGTERM: Redis flushes the append-only file and exits)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


def _secret_file(path: Path, make: Callable[[], str]) -> Path:
    """A secret kept in ``path`` (mode 0600), made on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(make() + "\n")
    return path


def secrets_from_files(secrets_dir: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """``SECRET_KEY_FILE`` and ``FIELD_ENCRYPTION_KEYS_FILE`` (as a mounted Secret gives them) for the secrets
    ``environ`` does not set itself; the files are made once in ``secrets_dir`` and kept, so what was encrypted
    in the database stays readable across runs."""
    makers: dict[str, Callable[[], str]] = {
        "SECRET_KEY": lambda: secrets.token_urlsafe(50),
        # A Fernet key: 32 random bytes, urlsafe base64.
        "FIELD_ENCRYPTION_KEYS": lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    }
    return {f"{name}_FILE": str(_secret_file(secrets_dir / name, make)) for name, make in makers.items()
            if not environ.get(name) and not environ.get(f"{name}_FILE")}


def ensure_database(url: str, *, fresh: bool = False) -> None:
    """Creates the PostgreSQL database of ``url`` when it is missing (dropped first with ``fresh``)."""
    # imported here: only the production run needs a PostgreSQL driver, `make run` (SQLite) does not
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        if fresh:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def static_files_fresh() -> bool:
    """Whether the compiled static files (their manifest) are newer than every static file of ours and than the
    pinned requirements (a new Django or DRF brings its own admin and API files)."""
    manifest = ROOT / "staticfiles" / "staticfiles.json"
    if not manifest.exists():
        return False
    compiled = manifest.stat().st_mtime
    ours = (path for folder in ROOT.glob("*/static") for path in folder.rglob("*") if path.is_file())
    return all(path.stat().st_mtime <= compiled for path in (ROOT / "requirements.txt", *ours))


# What the caller's environment must not hand down: another profile's settings (the test suite's, a shell's).
_NOT_INHERITED = ("MQCLOUD_PROFILE", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DEBUG",
                  "DJANGO_SETTINGS_MODULE", "CELERY_TASK_ALWAYS_EAGER", "KUBERNETES_CLUSTERS_JSON")


@dataclass
class ProductionRun:
    """The production profile on one machine: gunicorn, one Celery worker per queue and ``beats`` RedBeat beats,
    each through the image's entrypoint, on PostgreSQL and a Redis, with the simulated cluster and clouds, all on
    loopback. ``settings`` are extra environment (they win over the defaults here)."""

    var: Path
    database_url: str
    redis_url: str
    smtp_port: int
    port: int = 0
    beats: int = 1
    ready_delay_s: float | None = None
    log_dir: Path | None = None
    fresh_database: bool = False
    # How long each process has to stop on SIGTERM before it is killed.
    stop_timeout_s: float = 15.0
    settings: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        self.simulators = Simulators(var=self.var, cluster_port=free_port(), aws_port=free_port(),
                                     azure_port=free_port(), ready_delay_s=self.ready_delay_s)
        self.env = self._environment()
        self.processes = ProcessGroup(env=self.env, log_dir=self.log_dir)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _environment(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key not in _NOT_INHERITED}
        env.update(self.simulators.env())
        env.update({
            "MQCLOUD_PROFILE": "production",
            "MQCLOUD_VAR_DIR": str(self.var),
            # gunicorn and celery are found beside this interpreter (the virtualenv's bin).
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            # Plain HTTP, loopback receivers and simulated clouds; refused for hosts that are not loopback.
            "LOOPBACK_STANDINS": "1",
            "OUTBOUND_HTTP_ALLOW_LOOPBACK": "1",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "CSRF_TRUSTED_ORIGINS": f"http://127.0.0.1:{self.port},http://localhost:{self.port}",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{self.port}",
            "PORT": str(self.port),
            # gunicorn.conf.py binds every interface, as a pod does; on one machine only loopback. The command
            # line's environment counterpart wins over the config file.
            "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": "2",
            "WORKER_CONCURRENCY": "1",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(self.smtp_port),
        })
        env.update(secrets_from_files(self.var / "secrets", env))
        env.update(self.settings)
        return env

    def prepare(self) -> None:
        """What a release does before its pods may start: the database and its migrations (the migration Job's
        first step), and the static files the image compiles at build time (meanwhile, when out of date)."""
        self.var.mkdir(parents=True, exist_ok=True)
        static = None if static_files_fresh() else self._entrypoint_in_background(
            "manage", "collectstatic", "--noinput", "-v", "0")
        try:
            ensure_database(self.database_url, fresh=self.fresh_database)
            run_entrypoint("migrate", env=self.env)
        finally:
            if static is not None and static.wait() != 0:
                raise RuntimeError("collectstatic failed")

    def start_simulators(self) -> None:
        self.processes.start_all(self.simulators.commands())

    def start(self) -> None:
        """The Job's second step, the catalog, runs while the pods start: they wait only for the migrations."""
        catalog = self._entrypoint_in_background("sync-catalog")
        self.processes.start_all(production_commands(beats=self.beats))
        wait_until_serving(f"{self.url}/readyz", process=self.processes.processes["web"])
        if catalog.wait() != 0:
            raise RuntimeError("sync-catalog failed")

    def _entrypoint_in_background(self, role: str, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(ENTRYPOINT), role, *args], cwd=ROOT,  # noqa: S603
                                env=self.env)

    def __enter__(self) -> ProductionRun:
        try:
            # The simulators need no database: they start while the release is prepared.
            self.start_simulators()
            self.prepare()
            self.start()
        except BaseException:
            self.processes.stop_all(self.stop_timeout_s)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.processes.stop_all(self.stop_timeout_s)
