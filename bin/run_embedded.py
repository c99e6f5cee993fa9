#!/usr/bin/env python
"""`make run`: the whole product on the embedded default, with nothing else installed.

Migrates an SQLite database under var/, loads the catalog, seeds a demo organization, then runs the web
server, a Celery worker and Celery beat (on a filesystem transport: no Redis needed) until Ctrl-C.
No process started here talks to any host off this machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from controlplane.env import serves_only_loopback  # noqa: E402 - after the path is set
from controlplane.local_run import ProcessGroup, Simulators, port_is_free  # noqa: E402
from projects.demo import (  # noqa: E402
    DEMO_EMAIL,
    DEMO_PASSWORD,
    OPS_EMAIL,
    SSO_CLIENT_ID,
    SSO_CLIENT_SECRET,
    SSO_USERS,
)

PY = sys.executable
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = os.environ.get("PORT", "8000")
# The simulated Kubernetes cluster every region's deployments go to (KUBERNETES_SIMULATOR_URL).
SIMULATOR_PORT = os.environ.get("SIMULATOR_PORT", "8790")
# The simulated clouds of VPC peering (deployments.cloudsim): moto's server for AWS, our Azure stand-in.
AWS_SIM_PORT = os.environ.get("AWS_SIM_PORT", "8791")
AZURE_SIM_PORT = os.environ.get("AZURE_SIM_PORT", "8792")
# The local OpenID Provider of the demo organization's single sign-on (npm oidc-provider, `make oidc-provider`).
IDP_PORT = os.environ.get("IDP_PORT", "8793")
IDP_DIR = ROOT / "deploy" / "oidc-provider"


def manage(*args: str) -> None:
    subprocess.run([PY, "manage.py", *args], cwd=ROOT, check=True)


def local_idp(var: Path) -> list[str] | None:
    """The command of the demo organization's local OpenID Provider, its config written under var/; None when
    node or the npm package is missing (then the demo has no SSO)."""
    if not (IDP_DIR / "node_modules" / "oidc-provider").is_dir() or not shutil.which("node"):
        return None
    config = var / "oidc-provider.json"
    config.write_text(json.dumps({"port": int(IDP_PORT), "users": SSO_USERS, "clients": [
        {"client_id": SSO_CLIENT_ID, "client_secret": SSO_CLIENT_SECRET,
         "redirect_uris": [f"http://{HOST}:{PORT}/console/sso/callback"]}]}))
    return ["node", str(IDP_DIR / "idp.mjs"), str(config)]


def main() -> int:
    debug = os.environ.get("DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}
    if debug and not serves_only_loopback(HOST):
        # Debug pages show settings, every URL and source code: never to the network.
        print(f"DEBUG is on and HOST={HOST} is not a loopback address; debug pages would be served to the "
              "network. Unset DEBUG or bind to 127.0.0.1.", file=sys.stderr)
        return 1
    for host, port, variable in ((HOST, PORT, "PORT"), ("127.0.0.1", SIMULATOR_PORT, "SIMULATOR_PORT"),
                                 ("127.0.0.1", AWS_SIM_PORT, "AWS_SIM_PORT"),
                                 ("127.0.0.1", AZURE_SIM_PORT, "AZURE_SIM_PORT"),
                                 ("127.0.0.1", IDP_PORT, "IDP_PORT")):
        if not port_is_free(host, int(port)):
            print(f"Port {port} on {host} is taken (is mqcloud already running?). "
                  f"Stop that process or choose another port: make run {variable}=<port>", file=sys.stderr)
            return 1
    # The settings' VAR_DIR (MQCLOUD_VAR_DIR): the Celery queue folders must be the ones the transport uses.
    var = Path(os.environ.get("MQCLOUD_VAR_DIR") or ROOT / "var")
    simulators = Simulators(var=var, cluster_port=int(SIMULATOR_PORT), aws_port=int(AWS_SIM_PORT),
                            azure_port=int(AZURE_SIM_PORT))
    env = dict(os.environ)
    env.setdefault("MQCLOUD_PROFILE", "embedded")
    env["PUBLIC_BASE_URL"] = f"http://{HOST}:{PORT}"
    env.update(simulators.env())
    os.environ.update(env)
    (var / "celery-queue").mkdir(parents=True, exist_ok=True)
    (var / "celery-processed").mkdir(parents=True, exist_ok=True)

    manage("migrate", "--noinput", "-v", "0")
    manage("createcachetable")
    manage("sync_catalog")
    idp = local_idp(var)
    manage("seed_demo", *(["--sso-issuer", f"http://127.0.0.1:{IDP_PORT}"] if idp else []))

    commands = {
        **simulators.commands(PY),
        "web": [PY, "manage.py", "runserver", f"{HOST}:{PORT}", "--noreload"],
        "worker": [PY, "-m", "celery", "-A", "controlplane", "--quiet", "worker", "-P", "solo", "-l", "WARNING"],
        "beat": [PY, "-m", "celery", "-A", "controlplane", "--quiet", "beat", "-l", "WARNING",
                 "-s", str(var / "celerybeat-schedule")],
    }
    if idp:
        commands["idp"] = idp

    processes = ProcessGroup(env=env)
    processes.start_all(commands)
    time.sleep(2)
    print(
        "\n"
        "  mqcloud is running (embedded default: SQLite, filesystem Celery transport, local outbox)\n"
        f"  console:  http://{HOST}:{PORT}/console/\n"
        f"  login:    {DEMO_EMAIL} / {DEMO_PASSWORD}\n"
        f"  ops site: http://{HOST}:{PORT}/ops/  ({OPS_EMAIL} / {DEMO_PASSWORD}; the first login sets up two-factor)\n"
        f"  API docs: http://{HOST}:{PORT}/api/v1/docs\n"
        f"  simulated Kubernetes cluster: http://127.0.0.1:{SIMULATOR_PORT} (kubeconfig var/kubeconfig-sim.yaml)\n"
        f"  simulated clouds for VPC peering: AWS (moto) http://127.0.0.1:{AWS_SIM_PORT}, Azure "
        f"http://127.0.0.1:{AZURE_SIM_PORT}; demo customer and ids in var/cloudsim-networks.json; ops site → "
        f"Peerings → \"Play the customer's side\"\n"
        + (f"  single sign-on: console → \"Log in with SSO\" as {' or '.join(SSO_USERS)} (the local IdP at "
           f"http://127.0.0.1:{IDP_PORT} takes any password; their IdP groups make them admin or developer of "
           f"Demo Org)\n" if idp else "  single sign-on: not offered (make oidc-provider installs the local IdP)\n")
        + "  Ctrl-C stops everything.\n",
        flush=True,
    )
    return processes.supervise()


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
