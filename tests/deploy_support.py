"""The deployment files as the tests see them: the checker tools (installed once into .tools/venv by
bin/ensure_deploy_tools.sh) and each overlay rendered once per test session with `kubectl kustomize`."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
OVERLAYS = ("single-node", "ha")
TOOLS_BIN = ROOT / ".tools" / "venv" / "bin"


@functools.cache
def deploy_tools() -> Path:
    # A no-op once installed (a stamp file); `make test` has already run it as `make deploy-tools`.
    subprocess.run(["bash", str(ROOT / "bin" / "ensure_deploy_tools.sh")], check=True)
    return TOOLS_BIN


@functools.cache
def rendered() -> dict[str, str]:
    """Each overlay's YAML, rendered in parallel (one kubectl each)."""
    deploy_tools()
    runs = {name: subprocess.Popen(["kubectl", "kustomize", str(ROOT / "deploy" / "k8s" / "overlays" / name)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name in OVERLAYS}
    out = {}
    for name, run in runs.items():
        stdout, stderr = run.communicate(timeout=60)
        assert run.returncode == 0, f"kubectl kustomize {name}: {stderr}"
        out[name] = stdout
    return out


@functools.cache
def documents(overlay: str) -> tuple[dict[str, Any], ...]:
    return tuple(doc for doc in yaml.safe_load_all(rendered()[overlay]) if doc)


def workloads(overlay: str) -> list[dict[str, Any]]:
    return [doc for doc in documents(overlay) if doc["kind"] in {"Deployment", "Job"}]


def pod_containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]
