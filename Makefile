# tokenward: the two commands of the README.
#   make serve  -- set everything up, create the SQLite database and a signing key, serve on :8000
#   make test   -- set everything up and run the whole suite (lint, types, layers, tests)
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 1
# pytest processes (pytest-xdist): the suite's tests start their own servers, databases and
# ports, so they run side by side; TEST_PROCESSES=0 runs them in this one process.
TEST_PROCESSES ?= 2

.PHONY: serve test check lint typecheck layers coverage-core pytest bench docs setup screenshots

setup:
	@bash scripts/bootstrap.sh

serve: setup
	$(BIN)/tokenward serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

test: setup
	$(MAKE) --no-print-directory check
	$(MAKE) --no-print-directory pytest

check: lint typecheck layers coverage-core

lint:
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/ruff check src tests bench examples

typecheck:
	$(BIN)/mypy

layers:
	$(BIN)/lint-imports

# The sans-IO core is covered, every line and branch, by its own fast tests (no server).
coverage-core:
	$(BIN)/pytest -q -p no:cacheprovider tests/protocol tests/jose --cov=tokenward.protocol --cov=tokenward.jose --cov-branch --cov-report=term-missing --cov-fail-under=100

pytest:
	$(BIN)/pytest -q -p no:cacheprovider -n $(TEST_PROCESSES) --durations=25

docs: setup
	$(BIN)/python -m tokenward.server.settings > docs/configuration.md

bench: setup
	$(BIN)/python bench/bench_token.py

screenshots: setup
	TOKENWARD_SCREENSHOTS=docs $(BIN)/pytest -q -p no:cacheprovider tests/e2e/test_console_browser.py
