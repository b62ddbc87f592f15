# The two set-up commands: `make demo` and `make test`. Everything else is a step they use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 5000
HOST ?= 127.0.0.1
PYTEST_ARGS ?=

.PHONY: demo test install install-dev translations messages lint typecheck check services bench clean lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-main: $(BIN)/python pyproject.toml requirements/main.lock
	$(BIN)/python -m pip install --quiet -r requirements/main.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-main requirements/dev.lock
	$(BIN)/python -m pip install --quiet -r requirements/dev.lock
	touch $@

install: $(VENV)/.installed-main translations
install-dev: $(VENV)/.installed-dev translations

translations: $(VENV)/.installed-main
	$(BIN)/pybabel compile --use-fuzzy -d comptoir/translations -D messages --statistics 2>&1 | tail -n 2

# Re-extracts the messages from code and templates into the French catalog (then translate it).
messages: $(VENV)/.installed-main
	$(BIN)/pybabel extract -F babel.cfg -k lazy_gettext -k _l --ignore-dirs=".venv tests bench migrations" -o comptoir/translations/messages.pot .
	$(BIN)/pybabel update -i comptoir/translations/messages.pot -d comptoir/translations -D messages --no-fuzzy-matching

# Runs Comptoir on its embedded default: SQLite in instance/, jobs in-process, mail in /_dev/mail.
demo: install
	mkdir -p instance
	COMPTOIR_ENV=development $(BIN)/comptoir db upgrade
	COMPTOIR_ENV=development $(BIN)/comptoir seed-demo --base-url http://$(HOST):$(PORT)
	COMPTOIR_ENV=development $(BIN)/comptoir serve --host $(HOST) --port $(PORT) --no-reload

# All tests, against PostgreSQL and Redis (started here when installed but stopped).
test: install-dev
	scripts/ensure-services.sh
	$(BIN)/pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-dev
	$(BIN)/mypy

check: lint typecheck test

bench: install-dev
	scripts/ensure-services.sh
	$(BIN)/python -m bench

# Rewrites the exact-version lock files from pyproject.toml's lower bounds.
lock:
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 -o requirements/main.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements/dev.lock

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
