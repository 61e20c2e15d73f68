# Tuijian — every set-up step lives here: a fresh clone needs only `make run` / `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev
DATA ?= ./data
PORT ?= 8000

CHROMIUM ?= /usr/bin/chromium

.PHONY: help install run test lint bench clean-data browser wrk proto

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

browser:  ## Install Debian's Chromium for the web-page tests if it is missing (needs root)
	@test -x $(CHROMIUM) || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  (apt-get install -y -q chromium >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)); } || \
	  { echo "Chromium is needed at $(CHROMIUM) for the web-page tests: apt-get install chromium"; exit 1; }

wrk:  ## Install Debian's wrk, the load generator of bench/bench_load.py, if missing (needs root)
	@command -v wrk >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  (apt-get install -y -q wrk >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null)); } || \
	  { echo "wrk is needed for the load benchmarks: apt-get install wrk"; exit 1; }

test: lint browser wrk  ## Lint, type-check and run the test suite
	$(BIN)/pytest

bench: $(DEV) wrk  ## Run the benchmarks (numbers go to docs/BENCHMARKS.md by hand)
	$(BIN)/python bench/run_all.py

proto:  ## Generate src/tuijian/v1 from proto/ (installs do it themselves)
	$(BIN)/python setup.py -q build_proto

clean-data:  ## Remove the generated demo data
	rm -rf $(DATA)
