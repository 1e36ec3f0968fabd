# Everything starts from nothing: each target creates .venv and installs the project into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench bench-quick soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The demo: check an example job, show its plan, apply it against the embedded simulator
# (each --sandbox run starts the simulator afresh, in the same deterministic state), read the ledger.
demo: $(STAMP)
	@rm -f demo-ledger.jsonl
	$(BIN)/bulkgroups validate jobs/cohorts.yaml
	$(BIN)/bulkgroups plan jobs/cohorts.yaml --sandbox
	$(BIN)/bulkgroups apply jobs/cohorts.yaml --sandbox --yes --ledger demo-ledger.jsonl
	$(BIN)/bulkgroups report demo-ledger.jsonl

lint: $(STAMP)
	$(BIN)/ruff check bulkgroups tests benchmarks
	$(BIN)/ruff format --check bulkgroups tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck unit

# Every figure of benchmarks/RESULTS.md, medians of interleaved rounds (about 25 minutes on a quiet
# 2-core machine); bench-quick: the same at tiny sizes, one round, RESULTS.md left alone.
bench: $(STAMP)
	$(BIN)/python -m benchmarks

bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks --quick

# kill -9 at 25 seeded moments of a real `bulkgroups apply`, resumed each time: the figures, and
# exit 1 if the ledger and the simulator disagree (not part of `make test`: it takes minutes).
soak: $(STAMP)
	$(BIN)/python tests/soak.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
