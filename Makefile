# Two commands: `make demo` and `make test`. Each does its own set-up on a fresh
# machine (system packages, .venv, torch, the package) and is quick when set up.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.gapfill-installed
SYSTEM_STAMP := $(VENV)/.system-packages

.PHONY: setup demo test test-unit lint bench clean

setup: $(STAMP) $(SYSTEM_STAMP)

$(SYSTEM_STAMP): scripts/system-packages.sh
	@mkdir -p $(VENV)
	@scripts/system-packages.sh
	@touch $@

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@# torch first: 2.13.0 is a CPU build on this machine's disk; a range would pull CUDA.
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	@$(BIN)/python -m pip install -q -e '.[server,dev]'
	@touch $@

demo: setup
	$(BIN)/gapfill demo --out demo-output

test: setup
	$(BIN)/python -m pytest -q

test-unit: setup
	$(BIN)/python -m pytest -q tests/unit

lint: setup
	$(BIN)/ruff check gapfill tests benchmarks deploy

bench: setup
	$(BIN)/python benchmarks/synth_world.py

clean:
	rm -rf demo-output .pytest_cache
