# Lingju: `make run` starts everything locally, `make test` runs the whole suite.
# Both create .venv when missing and install the project into it; nothing else is needed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run demo test lint format migrate clean bootstrap bench

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Lingju needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

bootstrap: $(STAMP)

run: bootstrap  ## start nats-server and the four services on SQLite (Ctrl-C stops all)
	$(BIN)/lingju run

demo: bootstrap  ## like `make run`, and first seed a demo county of 5,000 residents through the APIs (skipped once seeded)
	$(BIN)/lingju run --demo 5000

test: bootstrap lint  ## the whole suite, on SQLite and (when reachable) PostgreSQL
	$(BIN)/pytest

bench: bootstrap  ## payment-run draft over 1,000,000 enrollments vs the bare INSERT (BENCH_ROWS=, BENCH_REPEAT=); not part of `make test`
	$(BIN)/python bench/payment_run.py

lint: bootstrap
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: bootstrap
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

migrate: bootstrap  ## apply every service's migrations to its configured database
	$(BIN)/lingju migrate

clean:
	rm -rf var .pytest_cache .ruff_cache
