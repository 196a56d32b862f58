# Everyday actions. `make dev` runs the gateway locally; `make test` installs and runs everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NEWEST_PYTHON := $(shell scripts/newest-python)
NEWEST_VENV := .venv-newest
PIP_FLAGS := -q --disable-pip-version-check

.PHONY: dev test lint test-core test-cpython test-newest test-pyodide node-deps build-worker bench format clean

$(STAMP): requirements-dev.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) -c constraints.txt -r requirements-dev.txt -e .
	touch $@

$(NEWEST_VENV)/.installed: requirements-dev.txt constraints.txt pyproject.toml
	$(NEWEST_PYTHON) -m venv $(NEWEST_VENV)
	$(NEWEST_VENV)/bin/pip install $(PIP_FLAGS) -c constraints.txt -r requirements-dev.txt -e .
	touch $@

dev: $(STAMP)
	$(BIN)/edgerelay serve --host 127.0.0.1 --port 8787

test: lint test-cpython test-newest test-pyodide

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python scripts/typecheck.py

# The sans-IO core alone, on CPython: seconds, for the edit-test loop (no network, no node).
test-core: $(STAMP)
	$(BIN)/python -m pytest tests/core -q -p no:randomly

# node_modules: tests/workers/test_upload_layout.py runs `wrangler deploy --dry-run` (Node 22).
test-cpython: $(STAMP) node_modules/.installed
	$(BIN)/python -m pytest

# What the Python version can change, again on the newest CPython the machine has (3.13 here;
# skipped only if none): the core, the transports and the Lambda handlers (Lambda offers 3.12
# and 3.13). Not the end-to-end suites (servers, browser, workerd, packaging), whose extra
# minutes would test the same code paths through subprocesses.
NEWEST_TESTS := tests/core tests/transports tests/aws_lambda tests/stores
test-newest:
	@if [ -z "$(NEWEST_PYTHON)" ]; then echo "no CPython 3.12+ found: newest-Python run skipped"; \
	else $(MAKE) --no-print-directory $(NEWEST_VENV)/.installed && $(NEWEST_VENV)/bin/python -m pytest $(NEWEST_TESTS); fi

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

node-deps: node_modules/.installed

# The core suite and the Worker's tests inside real Pyodide (the npm package) under Node.
test-pyodide: node_modules/.installed
	sh tests/pyodide/fetch_wheels.sh
	$(PYTHON) workers/cloudflare/build.py
	node tests/pyodide/run.mjs

# The Cloudflare Worker's upload folder (build/worker/ + python_modules/); wrangler runs it too.
build-worker:
	$(PYTHON) workers/cloudflare/build.py

# Prints figures only (no timed assertions anywhere). ROUNDS=3 for a quicker, noisier run.
ROUNDS ?= 8
bench: $(STAMP) node_modules/.installed
	$(BIN)/python bench/relay_bench.py --rounds $(ROUNDS)
	$(BIN)/python bench/relay_bench.py --rounds $(ROUNDS) --pin
	$(BIN)/python bench/first_byte_trace.py
	$(BIN)/python bench/translate_bench.py
	$(BIN)/python bench/observer_bench.py
	$(BIN)/python bench/request_bench.py
	$(BIN)/python bench/lambda_bench.py
	sh tests/pyodide/fetch_wheels.sh
	$(PYTHON) workers/cloudflare/build.py
	node bench/worker_bench.mjs
	$(BIN)/python bench/identity_bench.py
	$(BIN)/python bench/loop_hold_bench.py
	$(BIN)/python bench/budget_bench.py
	$(BIN)/python bench/load_bench.py
	$(BIN)/python bench/cache_bench.py --rounds 3
	$(BIN)/python bench/limits_bench.py
	$(BIN)/python bench/baseline_bench.py
	$(BIN)/python bench/gc_bench.py

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) $(NEWEST_VENV) node_modules .cache build python_modules
