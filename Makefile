# Two commands matter: `make dev` (the whole service on this machine) and `make test` (every test).
# Both bootstrap .venv first; the bootstrap re-runs only when pyproject.toml or constraints.txt change.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv dev test lint lint-template typecheck check bench package clean lock \
	build-ApiFunction build-RefreshWorkerFunction

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed; set PYTHON=/path/to/python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)  ## create .venv with every dependency (idempotent)

dev: $(STAMP)  ## run the whole service on localhost with seeded data (SIMULATE=1 keeps adding results; ARGS=... more flags, see docs/local.md)
	$(BIN)/python -m devstack $(if $(SIMULATE),--simulate,) $(ARGS)

test: $(STAMP)  ## run every test (lint and type checks included)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(MAKE) --no-print-directory lint-template
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)  ## ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

lint-template: $(STAMP)  ## cfn-lint template.yaml with the serverless rules (zero findings allowed)
	$(BIN)/cfn-lint template.yaml --append-rules cfn_lint_serverless.rules

typecheck: $(STAMP)  ## mypy --strict
	$(BIN)/mypy

# Lambda artifacts for the template's runtime (python3.13, arm64), whatever this machine is. Pip needs
# the network (PyPI). A Python 3.13 byte-compiles the artifacts: PYTHON313=path, else the first one found
# (python3.13 on the PATH, pyenv's or uv's installs, /usr/local/bin, /opt/homebrew/bin, /usr/bin).
PYTHON313 ?=
package: $(STAMP)  ## build build/{api,worker}[.zip] for Lambda (python3.13/arm64) and print their sizes
	$(BIN)/python -m deploy.package api worker --out build --zip $(if $(PYTHON313),--compile-with $(PYTHON313),)

# `sam build` calls these (BuildMethod: makefile) with ARTIFACTS_DIR set; plain python3 is enough.
build-ApiFunction:
	$(PYTHON) -m deploy.package api --into "$(ARTIFACTS_DIR)" $(if $(PYTHON313),--compile-with $(PYTHON313),)

build-RefreshWorkerFunction:
	$(PYTHON) -m deploy.package worker --into "$(ARTIFACTS_DIR)" $(if $(PYTHON313),--compile-with $(PYTHON313),)

bench: $(STAMP)  ## run the benchmarks, print the table, write bench/results.json
	$(BIN)/python -m bench

lock:  ## re-pin constraints.txt from a fresh resolution of pyproject.toml
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade pip
	.venv-lock/bin/python -m pip install --quiet -e '.[dev]'
	.venv-lock/bin/python -m pip freeze --exclude-editable | grep -v '^-e' > constraints.txt
	rm -rf .venv-lock

clean:  ## remove the virtualenv, caches, build output (build/, .aws-sam/) and local stack data
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .devstack .aws-sam build dist *.egg-info
