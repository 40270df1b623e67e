# Two commands: `make run` starts Postroom in development mode, `make test` runs every check.
# Both create .venv on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The SMTP listener's tests drive real mail clients (swaks, Jakarta Mail on Java, nodemailer
# from npm into tests/clients/node): scripts/ensure-mail-clients.sh installs what is missing.
# The dashboard's browser tests drive Debian's Chromium through Playwright (which cannot
# download its own browsers here); installed when missing.
CHROMIUM := /usr/bin/chromium

.PHONY: run test lint typecheck pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(VENV)/.installed $@

run: $(VENV)/.installed
	$(BIN)/postroom serve --dev

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy --strict src

$(CHROMIUM):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

pytest: $(VENV)/.installed-dev | $(CHROMIUM)
	bash scripts/ensure-postgres.sh
	bash scripts/ensure-mail-clients.sh
	$(BIN)/pytest

test: lint typecheck pytest

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/listener.py

clean:
	rm -rf $(VENV) var .mypy_cache .pytest_cache .ruff_cache
