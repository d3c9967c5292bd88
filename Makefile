# The two front-door commands (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# pytest-xdist processes for `make test` (0: none). The suite mostly waits on
# subprocesses, so 2 fit the 2-core machines; pytest exits non-zero (5) when it
# collects no test, and make fails with it.
TEST_WORKERS ?= 2

.PHONY: demo test lint typecheck unit bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.demo-installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[example,view]'
	touch $@

$(VENV)/.test-installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[test,example]'
	touch $@

## Install tether and the example's dependencies, run examples/digits, show the experiments.
demo: $(VENV)/.demo-installed
	PATH="$(abspath $(BIN)):$$PATH" bash scripts/demo.sh

## Install test dependencies, lint, type-check, check layering and unit sizes, run the suite.
# The demo's install too, before the suite: tests/test_readme.py runs `make demo`, which
# would otherwise reinstall tether while the other xdist process's tests import it.
test: $(VENV)/.test-installed $(VENV)/.demo-installed
	bash scripts/ensure-services.sh
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
