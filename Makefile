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
# The durability test watches the enqueue's writes and syncs with strace; installed when missing.
STRACE := /usr/bin/strace
# A font with Chinese, Japanese and Korean glyphs, so that the email screenshots of those
# locales show text instead of empty boxes (the templates load no web fonts).
CJK_FONT := /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc

.PHONY: run test lint typecheck pytest bench clean messages

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
	$(BIN)/mypy --strict bench

$(CHROMIUM):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

$(STRACE):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null

$(CJK_FONT):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-wqy-zenhei >/dev/null

pytest: $(VENV)/.installed-dev | $(CHROMIUM) $(STRACE) $(CJK_FONT)
	bash scripts/ensure-postgres.sh
	bash scripts/ensure-mail-clients.sh
	$(BIN)/pytest

test: lint typecheck pytest

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/listener.py

# After changing a built-in template's wording: extract its strings (babel.cfg) and merge them
# into every catalogue; new strings arrive empty and the catalogue tests name them until done.
CATALOGUES := src/postroom/render/locales
messages: $(VENV)/.installed-dev
	$(BIN)/pybabel extract -F babel.cfg --no-location --omit-header -o $(VENV)/messages.pot .
	for po in $(CATALOGUES)/*.po; do \
	  tag=$$(basename $$po .po); \
	  $(BIN)/pybabel update --no-fuzzy-matching -w 100 -i $(VENV)/messages.pot \
	    -o $$po -l $$(echo $$tag | tr - _); \
	done

clean:
	rm -rf $(VENV) var .mypy_cache .pytest_cache .ruff_cache
