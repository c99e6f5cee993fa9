#!/usr/bin/env python
"""`make run`: the whole product on the embedded default, with nothing else installed.

Migrates an SQLite database under var/, loads the catalog, seeds a demo organization, then runs the web
server, a Celery worker and Celery beat (on a filesystem transport: no Redis needed) until Ctrl-C.
No process started here talks to any host off this machine.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = os.environ.get("PORT", "8000")
# The simulated Kubernetes cluster every region's deployments go to (KUBERNETES_SIMULATOR_URL).
SIMULATOR_PORT = os.environ.get("SIMULATOR_PORT", "8790")
# The simulated clouds of VPC peering (deployments.cloudsim): moto's server for AWS, our Azure stand-in.
AWS_SIM_PORT = os.environ.get("AWS_SIM_PORT", "8791")
AZURE_SIM_PORT = os.environ.get("AZURE_SIM_PORT", "8792")


def manage(*args: str) -> None:
    subprocess.run([PY, "manage.py", *args], cwd=ROOT, check=True)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex((host, port)) != 0


def serves_only_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def main() -> int:
    debug = os.environ.get("DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}
    if debug and not serves_only_loopback(HOST):
        # Debug pages show settings, every URL and source code: never to the network.
        print(f"DEBUG is on and HOST={HOST} is not a loopback address; debug pages would be served to the "
              "network. Unset DEBUG or bind to 127.0.0.1.", file=sys.stderr)
        return 1
    for host, port, variable in ((HOST, PORT, "PORT"), ("127.0.0.1", SIMULATOR_PORT, "SIMULATOR_PORT"),
                                 ("127.0.0.1", AWS_SIM_PORT, "AWS_SIM_PORT"),
                                 ("127.0.0.1", AZURE_SIM_PORT, "AZURE_SIM_PORT")):
        if not port_is_free(host, int(port)):
            print(f"Port {port} on {host} is taken (is mqcloud already running?). "
                  f"Stop that process or choose another port: make run {variable}=<port>", file=sys.stderr)
            return 1
    env = dict(os.environ)
    env.setdefault("MQCLOUD_PROFILE", "embedded")
    env["PUBLIC_BASE_URL"] = f"http://{HOST}:{PORT}"
    env["KUBERNETES_SIMULATOR_URL"] = f"http://127.0.0.1:{SIMULATOR_PORT}"
    env["PEERING_AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{AWS_SIM_PORT}"
    env["PEERING_AZURE_ENDPOINT_URL"] = f"http://127.0.0.1:{AZURE_SIM_PORT}"
    # The settings' VAR_DIR (MQCLOUD_VAR_DIR): the Celery queue folders must be the ones the transport uses.
    var = Path(os.environ.get("MQCLOUD_VAR_DIR") or ROOT / "var")
    networks_file = var / "cloudsim-networks.json"
    env["PEERING_PLATFORM_NETWORKS_FILE"] = str(networks_file)
    os.environ.update(env)
    (var / "celery-queue").mkdir(parents=True, exist_ok=True)
    (var / "celery-processed").mkdir(parents=True, exist_ok=True)

    manage("migrate", "--noinput", "-v", "0")
    manage("createcachetable")
    manage("sync_catalog")
    manage("seed_demo")

    commands = {
        # --brokers-dir: a real MQTT broker for every running deployment, on its endpoint's loopback address.
        "cluster": [PY, "-m", "k8s.simulator", "--port", SIMULATOR_PORT, "--kubeconfig",
                    str(var / "kubeconfig-sim.yaml"), "--brokers-dir", str(var / "sim-brokers")],
        "clouds": [PY, "-m", "deployments.cloudsim", "--aws-port", AWS_SIM_PORT, "--azure-port", AZURE_SIM_PORT,
                   "--networks-file", str(networks_file)],
        "web": [PY, "manage.py", "runserver", f"{HOST}:{PORT}", "--noreload"],
        "worker": [PY, "-m", "celery", "-A", "controlplane", "--quiet", "worker", "-P", "solo", "-l", "WARNING"],
        "beat": [PY, "-m", "celery", "-A", "controlplane", "--quiet", "beat", "-l", "WARNING",
                 "-s", str(var / "celerybeat-schedule")],
    }
    from projects.demo import DEMO_EMAIL, DEMO_PASSWORD, OPS_EMAIL

    processes: dict[str, subprocess.Popen] = {}
    for name, cmd in commands.items():
        processes[name] = subprocess.Popen(cmd, cwd=ROOT, env=env)
    time.sleep(2)
    print(
        "\n"
        "  mqcloud is running (embedded default: SQLite, filesystem Celery transport, local outbox)\n"
        f"  console:  http://{HOST}:{PORT}/console/\n"
        f"  login:    {DEMO_EMAIL} / {DEMO_PASSWORD}\n"
        f"  ops site: http://{HOST}:{PORT}/ops/  ({OPS_EMAIL} / {DEMO_PASSWORD})\n"
        f"  API docs: http://{HOST}:{PORT}/api/v1/docs\n"
        f"  simulated Kubernetes cluster: http://127.0.0.1:{SIMULATOR_PORT} (kubeconfig var/kubeconfig-sim.yaml)\n"
        f"  simulated clouds for VPC peering: AWS (moto) http://127.0.0.1:{AWS_SIM_PORT}, Azure "
        f"http://127.0.0.1:{AZURE_SIM_PORT}; demo customer and ids in var/cloudsim-networks.json; ops site → "
        f"Peerings → \"Play the customer's side\"\n"
        "  Ctrl-C stops everything.\n",
        flush=True,
    )

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    try:
        while not stopping:
            for name, process in processes.items():
                if process.poll() is not None:
                    print(f"{name} exited with {process.returncode}; stopping the rest", file=sys.stderr)
                    exit_code = process.returncode or 1
                    stopping = True
            time.sleep(0.5)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.time() + 10
        for process in processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                process.kill()
    return exit_code


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    sys.exit(main())
