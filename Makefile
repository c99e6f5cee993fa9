# mqcloud — two commands: `make run` (the whole product on an embedded default) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

# The test profile talks to real PostgreSQL and Redis on this machine.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/mqcloud
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: run test lint bench install install-dev services browser clean

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

run: install
	PORT=$(or $(PORT),8000) SIMULATOR_PORT=$(or $(SIMULATOR_PORT),8790) $(PY) bin/run_embedded.py

services:
	@bash bin/ensure_services.sh

browser:
	@bash bin/ensure_browser.sh

lint: install-dev
	$(VENV)/bin/ruff check .

test: install-dev services browser
	$(VENV)/bin/ruff check .
	MQCLOUD_PROFILE=test DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
		$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: install-dev services
	MQCLOUD_PROFILE=test DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) bench/run.py
	MQCLOUD_PROFILE=test DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) bench/provisioning.py
	MQCLOUD_PROFILE=test DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) bench/alerts.py
	MQCLOUD_PROFILE=test DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) bench/billing.py \
		$(if $(BILLING_BENCH_DEPLOYMENTS),--deployments $(BILLING_BENCH_DEPLOYMENTS))

clean:
	rm -rf var staticfiles .pytest_cache
