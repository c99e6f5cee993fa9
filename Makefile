# mqcloud — two commands: `make run` (the whole product on an embedded default) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

# The test profile talks to real PostgreSQL and Redis on this machine.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/mqcloud
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
TEST_ENV = MQCLOUD_PROFILE=test DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL)

# Architecture contracts: every import-linter contract in pyproject.toml ([tool.importlinter], by id) is enforced
# by `make arch` except those listed in ARCH_PENDING, which wait for issue 12's branches to land
# (`make arch-pending` shows what still breaks them). Empty the list to enforce all: `make arch ARCH_PENDING=`.
ARCH_PENDING ?=
ARCH_ALL = $(shell $(PY) -c 'import tomllib; print(*(c["id"] for c in tomllib.load(open("pyproject.toml", "rb"))["tool"]["importlinter"]["contracts"]))')
ARCH_CONTRACTS = $(filter-out $(ARCH_PENDING),$(ARCH_ALL))

.PHONY: run run-production test lint arch arch-pending typecheck audit advisories-refresh bench install install-dev services browser axe oidc-provider clean deploy-tools deploy-check

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install oidc-provider
	PORT=$(or $(PORT),8000) SIMULATOR_PORT=$(or $(SIMULATOR_PORT),8790) $(PY) bin/run_embedded.py

# The production profile on one machine (gunicorn, a worker per queue, RedBeat beat, PostgreSQL, a Redis of its own
# with an append-only file, the simulated cluster and clouds; all on loopback): docs/operations.md.
run-production: install-dev services
	PORT=$(or $(PORT),8100) $(PY) bin/run_production.py

services:
	@bash bin/ensure_services.sh

browser:
	@bash bin/ensure_browser.sh

# axe-core (npm, pinned) into .tools/ for the console's accessibility sweep.
axe:
	@bash bin/ensure_axe.sh

# The local OpenID Provider (npm `oidc-provider`, pinned) for the SSO tests and `make run`.
oidc-provider:
	@bash bin/ensure_oidc_provider.sh

lint: install-dev
	$(VENV)/bin/ruff check .

# Import contracts, then the in-function import and module length rules (tests/test_architecture.py).
arch: install-dev services
	$(VENV)/bin/lint-imports --no-logo --no-cache $(addprefix --contract ,$(ARCH_CONTRACTS))
	$(TEST_ENV) $(VENV)/bin/pytest -q -p no:cacheprovider tests/test_architecture.py

arch-pending: install-dev
	$(VENV)/bin/lint-imports --no-logo --no-cache $(addprefix --contract ,$(ARCH_PENDING))

# mypy with the Django and DRF plugins over the paths in [tool.mypy] of pyproject.toml (the plugin loads the
# settings, hence the test environment).
typecheck: install-dev
	$(TEST_ENV) $(VENV)/bin/mypy

# Known vulnerabilities in the pinned requirements (pip-audit, PyPI's advisory data). Not part of `make test`:
# it needs a vulnerability service, and the machines this project is built on reach none (osv.dev is refused and
# the package index they see carries no advisories, so every pin would come back "not found"). --strict makes
# exactly that a failure instead of a silent pass.
audit: install-dev
	$(PIP) install --quiet pip-audit==2.10.1
	$(VENV)/bin/pip-audit --strict --progress-spinner off -r requirements.txt

# What `make test` audits offline instead (bin/audit_offline.py, tests/test_dependency_advisories.py): PyPA's advisory
# database, vendored in deploy/advisories for the packages we pin. A new snapshot: cloned from GitHub, or
# ADVISORY_DB=<a clone or mirror of github.com/pypa/advisory-database already on this machine>.
advisories-refresh: install-dev
	$(PY) bin/refresh_advisories.py $(if $(ADVISORY_DB),--source $(ADVISORY_DB))
	$(PY) bin/audit_offline.py

# The deployment checkers (hadolint, kubernetes-validate; kubectl for `kubectl kustomize`) in .tools/venv, apart
# from the application's dependencies; tests/test_deploy_*.py render, validate and lint with them.
deploy-tools:
	@bash bin/ensure_deploy_tools.sh

# What `make test` checks of the image and manifests, plus checkov over the Dockerfile and both rendered
# overlays (too slow to install for every `make test`; its own venv in .tools/checkov).
DEPLOY_OVERLAYS := single-node ha
deploy-check: deploy-tools
	.tools/venv/bin/hadolint Dockerfile
	@mkdir -p .tools/rendered
	@for overlay in $(DEPLOY_OVERLAYS); do \
		kubectl kustomize deploy/k8s/overlays/$$overlay > .tools/rendered/$$overlay.yaml || exit 1; done
	.tools/venv/bin/kubernetes-validate --strict --quiet --no-warn $(DEPLOY_OVERLAYS:%=.tools/rendered/%.yaml)
	@test -f .tools/checkov/.installed -a .tools/checkov/.installed -nt deploy/checkov-requirements.txt || { \
		python3 -m venv .tools/checkov && \
		.tools/checkov/bin/pip install --quiet --disable-pip-version-check -r deploy/checkov-requirements.txt && \
		touch .tools/checkov/.installed; }
	.tools/checkov/bin/checkov --quiet --compact --skip-download --framework kubernetes \
		$(DEPLOY_OVERLAYS:%=-f .tools/rendered/%.yaml)
	.tools/checkov/bin/checkov --quiet --compact --skip-download --framework dockerfile -f Dockerfile

# Lint, the architecture contracts and the type check run first (in this order), then the suite.
test: install-dev services browser axe oidc-provider deploy-tools lint arch typecheck
	$(TEST_ENV) $(VENV)/bin/pytest $(PYTEST_ARGS)

bench: install-dev services
	$(TEST_ENV) $(PY) bench/run.py
	$(TEST_ENV) $(PY) bench/provisioning.py
	$(TEST_ENV) $(PY) bench/upgrade.py
	$(TEST_ENV) $(PY) bench/alerts.py
	$(TEST_ENV) $(PY) bench/billing.py \
		$(if $(BILLING_BENCH_DEPLOYMENTS),--deployments $(BILLING_BENCH_DEPLOYMENTS))
	$(TEST_ENV) $(PY) bench/mqtt_connect.py
	$(TEST_ENV) $(PY) bench/mqtt_import.py
	$(TEST_ENV) $(PY) bench/load.py $(if $(LOAD_BENCH_USERS),--users $(LOAD_BENCH_USERS))

clean:
	rm -rf var staticfiles .pytest_cache
