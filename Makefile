# Everything a developer or CI needs, from a machine with only Python 3.11+ and make.
# uv itself is bootstrapped into .tools/ (pinned), then `uv sync --locked` installs the rest.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
# The real interpreter, not a shim: uv compares it with the venv's and would rebuild the venv.
export UV_PYTHON ?= $(shell $(PYTHON) -c 'import sys; print(sys.executable)' 2>/dev/null)
export UV_PYTHON_DOWNLOADS ?= never
PYTEST := $(UV) run --locked pytest

.PHONY: help install run superuser test test-unit test-shared test-auth test-items test-devstack e2e lint format bench bench-smoke up down clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(UV):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is required (PYTHON=$(PYTHON))" >&2; exit 1; }
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

.venv/.synced: $(UV) uv.lock pyproject.toml */pyproject.toml
	$(UV) sync --locked
	@touch $@

install: .venv/.synced ## Install uv (if missing) and every dependency from uv.lock

run: install ## Run the whole stack locally (gateway on http://127.0.0.1:8080)
	$(UV) run --locked devstack run

superuser: install ## An administrator of the stack `make run` started: ADMIN=name ADMIN_EMAIL=email (password: prompted, or piped on stdin)
	@test -n "$(ADMIN)" -a -n "$(ADMIN_EMAIL)" || { echo "usage: make superuser ADMIN=name ADMIN_EMAIL=email" >&2; exit 2; }
	$(UV) run --locked devstack cli auth-service create-superuser --username "$(ADMIN)" --email "$(ADMIN_EMAIL)"

test: test-unit e2e ## Every test: unit/integration suites, then end to end

test-unit: test-shared test-auth test-items test-devstack ## All suites except end to end

test-shared: install
	$(PYTEST) shared/tests

test-auth: install
	$(PYTEST) auth-service/tests

test-items: install
	$(PYTEST) items-service/tests

test-devstack: install
	$(PYTEST) devstack/tests

e2e: install ## End-to-end suite through the gateway (starts the stack unless E2E_BASE_URL is set)
	$(PYTEST) tests-e2e/tests

lint: install ## ruff check, ruff format --check, mypy
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .
	$(UV) run --locked mypy shared/src auth-service/src items-service/src devstack/src tests-e2e/src

format: install ## Apply ruff fixes and formatting
	$(UV) run --locked ruff check --fix .
	$(UV) run --locked ruff format .

bench: install ## Benchmarks through the gateway; writes docs/benchmarks.md
	$(UV) run --locked devstack bench

bench-smoke: install ## A seconds-long benchmark run, numbers not judged
	$(UV) run --locked devstack bench --smoke

up: ## docker compose up (operators)
	docker compose up --build

down: ## docker compose down
	docker compose down

clean: ## Remove the virtualenv, tools and local data
	rm -rf .venv $(TOOLS) .data
