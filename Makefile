# cvpipe: two commands on a fresh machine.
#   make demo   creates .venv, installs everything, runs the pipeline on the demo data
#   make test   creates .venv with test extras, runs the whole suite
#   make lock   re-resolves requirements/lock.txt after a dependency change
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
DEMO   ?= demo
# Every install goes through the lock: the exact version of every package (make lock).
LOCK   := requirements/lock.txt
LOCKED := install -c $(LOCK) --build-constraint $(LOCK)
# Tool environment for `make lock` only (pip-tools resolves; it installs nothing here).
LOCKENV ?= .venv-lock
PIP_TOOLS := pip-tools==7.7.0

.PHONY: demo test lint typecheck bench clean venv lock

$(BIN)/python:
	@$(PYTHON) -c 'import sys, platform; v = sys.version_info[:2]; (v != (3, 11) or platform.machine() != "x86_64") and print(f"note: $(LOCK) was resolved on Python 3.11 / x86_64; this is {platform.python_version()} / {platform.machine()}: if an install fails, run make lock")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip --disable-pip-version-check -q install -c $(LOCK) pip

# Stamps re-install only when pyproject.toml or the lock changes; packages the lock no
# longer has are removed, so the environment is exactly the lock's.
$(VENV)/.installed-all: pyproject.toml $(LOCK) | $(BIN)/python
	$(PIP) $(LOCKED) -e '.[all]'
	$(PIP) $(LOCKED) --no-deps -r requirements/no-deps.in
	$(BIN)/python scripts/prune_venv.py $(LOCK)
	@touch $@

$(VENV)/.installed-test: pyproject.toml $(LOCK) $(VENV)/.installed-all
	$(PIP) $(LOCKED) -e '.[test]'
	@touch $@

# Re-resolve every dependency from pyproject.toml (+ requirements/*.in) into the lock.
lock:
	test -x $(LOCKENV)/bin/python || $(PYTHON) -m venv $(LOCKENV)
	$(LOCKENV)/bin/python -m pip --disable-pip-version-check -q install '$(PIP_TOOLS)'
	$(LOCKENV)/bin/python scripts/lock.py --out $(LOCK)

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
	rm -rf $(VENV) $(LOCKENV) $(DEMO) .pytest_cache build src/*.egg-info
