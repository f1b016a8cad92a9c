# The two commands of the README: `make run` and `make test`. Each builds .venv on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test coverage lint format bench clean

# uv installs the same versions pip resolves (diffed with `pip freeze`) in a third of the time; pip stays in the venv
# and takes over where uv cannot (uv reads no pip.conf: another index, a private CA). Bytecode is compiled at
# install: without it every process (and every test's child process) compiles the dependencies again wherever
# PYTHONDONTWRITEBYTECODE is set.
INSTALL = $(BIN)/uv pip install -q --python $(BIN)/python --compile-bytecode $(1) || $(BIN)/pip install -q $(1)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(BIN)/uv: | $(BIN)/python
	$(BIN)/python -m pip install -q uv

$(VENV)/.run-installed: pyproject.toml | $(BIN)/uv
	$(call INSTALL,-e .)
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/uv
	$(call INSTALL,-e '.[dev]')
	touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed
	$(BIN)/kamiyo db upgrade
	$(BIN)/kamiyo serve --host $(HOST) --port $(PORT)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# Three workers (pytest-xdist) on two cores fill the gaps where tests wait; each has its own PostgreSQL, Redis and temp dirs.
TEST_WORKERS ?= 3

test: lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

coverage: $(VENV)/.dev-installed
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal --cov=kamiyo --cov-report=term

format: $(VENV)/.dev-installed
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: $(VENV)/.dev-installed
	$(BIN)/python bench/api.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
