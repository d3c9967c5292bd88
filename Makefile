# The two front-door commands (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck unit bench docs clean web wheel

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.demo-installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[example,view]'
	bash scripts/build-web.sh
	touch $@

$(VENV)/.test-installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[test,example]'
	bash scripts/build-web.sh
	touch $@

## Install tether and the example's dependencies, run examples/digits, show the experiments.
demo: $(VENV)/.demo-installed
	bash scripts/build-web.sh
	PATH="$(abspath $(BIN)):$$PATH" bash scripts/demo.sh

## Build the viewer's front-end (web/) into src/tether/web/static/ (skipped when up to date).
web:
	bash scripts/build-web.sh

## A wheel with the built front-end in it (setup.py builds web/ first when npm is there).
wheel: $(BIN)/python
	bash scripts/build-web.sh
	$(BIN)/pip wheel --no-deps -w dist .

## Install test dependencies, lint, type-check, check layering and unit sizes, run the suite.
test: $(VENV)/.test-installed
	bash scripts/ensure-services.sh
	bash scripts/build-web.sh
	$(BIN)/ruff check src tests bench examples scripts
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python scripts/check_sizes.py
	$(BIN)/pytest -q -p no:cacheprovider

unit: $(VENV)/.test-installed
	$(BIN)/pytest -q -x

bench: $(VENV)/.test-installed
	$(BIN)/python bench/overhead.py

## Regenerate docs/cli.md from the commands' --help.
docs: $(VENV)/.test-installed
	COLUMNS=80 $(BIN)/python scripts/gen_cli_reference.py

clean:
	rm -rf $(VENV) .demo build dist src/*.egg-info
