# Tuijian — every set-up step lives here: a fresh clone needs only `make run` / `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev
DATA ?= ./data
PORT ?= 8000

.PHONY: help install run test lint bench clean-data

help:  ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 needed"'
	$(PYTHON) -m venv $(VENV)

$(RUNTIME): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e .
	@touch $@

$(DEV): $(RUNTIME)
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

install: $(RUNTIME)  ## Create .venv and install the package (idempotent)

run: install  ## Generate demo data if missing, simulate traffic, serve on :8000
	$(BIN)/tuijian run --data $(DATA) --port $(PORT)

lint: $(DEV)  ## ruff + mypy
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

test: lint  ## Lint, type-check and run the test suite
	$(BIN)/pytest

bench: $(DEV)  ## Run the benchmarks (numbers go to docs/BENCHMARKS.md by hand)
	$(BIN)/python bench/run_all.py

clean-data:  ## Remove the generated demo data
	rm -rf $(DATA)
