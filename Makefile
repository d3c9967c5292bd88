# The two front-door commands (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# pytest-xdist processes for `make test` (0: none). The suite mostly waits on
# subprocesses, so 2 fit the 2-core machines; pytest exits non-zero (5) when it
# collects no test, and make fails with it.
TEST_WORKERS ?= 2

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
# The demo's install too, before the suite: tests/test_readme.py runs `make demo`, which
# would otherwise reinstall tether while the other xdist process's tests import it.
test: $(VENV)/.test-installed $(VENV)/.demo-installed
	bash scripts/ensure-services.sh
	bash scripts/build-web.sh
	$(BIN)/ruff check src tests bench examples scripts
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python scripts/check_sizes.py
	$(BIN)/pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadgroup

unit: $(VENV)/.test-installed
	$(BIN)/pytest -q -x

bench: $(VENV)/.test-installed
	$(BIN)/python bench/overhead.py

## Regenerate docs/cli.md from the commands' --help.
docs: $(VENV)/.test-installed
	COLUMNS=80 $(BIN)/python scripts/gen_cli_reference.py

clean:
	rm -rf $(VENV) .demo build dist src/*.egg-info
